// The Teach panel: record about a second of a sign as hand landmarks (the hands in the stream's
// answers; never frames), show the take and keep it or discard it, and walk through the
// alphabet. A take is posted only when kept, so discarding it sends nothing. The profile's half
// (the status line, the model, learning as you sign, the data) is teach_profile.js.

import { LETTERS, frameSize, sampleOf } from "./learn.js";
import { ProfilePanel } from "./teach_profile.js";
import { BONES } from "./view.js";

const COUNT = 3; // the countdown before a take: 3, 2, 1
const COUNT_STEP_MS = 700;
const RECORD_MS = 1000; // a take: about a second of the hand
const WALK = "ABCDEFGHIKLMNOPQRSTUVWXY"; // the alphabet's static letters: J and Z move
const SPECIAL = new Set(["nothing", "space", "del"]);
const MAX_LABEL = 64;

const $ = (id) => document.getElementById(id);

/** What is wrong with a typed label ("" where nothing is): the server checks it again. */
export function labelProblem(label) {
  if (!label) return "Type the sign's text first.";
  if (label.length > MAX_LABEL) return `A sign's text is at most ${MAX_LABEL} characters.`;
  if (/[/\\\u0000-\u001f\u007f]/.test(label) || label === "." || label === "..") {
    return "A sign's text cannot hold slashes or control characters, or be . or ..";
  }
  return "";
}

export class TeachPanel {
  /**
   * ``command(message)`` sends a stream command (false while disconnected); ``video`` is the
   * camera's element (its size is the frame the answers' landmarks are normalised to).
   */
  constructor({ command, video }) {
    this.video = video;
    this.mine = new ProfilePanel({ command, video, onProfile: (profile) => this.showCounts(profile) });
    this.mode = "idle"; // idle | counting | recording | review | saving
    this.take = null; // {label, hands: [record hands], shown: [answer landmarks]}
    this.walk = null; // the alphabet walk-through's place in WALK, or null
    this.timer = null;
    this.returnFocus = null;
    this.lead = "";
    this.buttons = new Map(); // label -> its button
    this.ui = {
      labels: $("teach-labels"), newLabel: $("teach-new-label"), prompt: $("teach-prompt"), canvas: $("teach-hand"),
      take: $("teach-take"), keep: $("teach-keep"), again: $("teach-again"), discard: $("teach-discard"),
      skip: $("teach-skip"), cancel: $("teach-cancel"), stop: $("teach-stop"), alphabet: $("teach-alphabet"),
    };
    this.ctx = this.ui.canvas.getContext("2d");
    this.wire();
  }

  // ---------------------------------------------------------------- hooks for app.js

  start() {
    this.mine.start();
  }

  streamOpened() {
    this.mine.streamOpened();
  }

  /** Each frame's answer: the hand drawn while a take runs, caught while it records, and learnt from. */
  heard(message) {
    this.mine.heard(message);
    const hand = message.hand && Array.isArray(message.hand.landmarks) ? message.hand : null;
    if (this.mode === "counting" || this.mode === "recording") this.drawHands(hand ? [hand.landmarks] : []);
    if (!hand || this.mode !== "recording" || this.take.hands.length >= this.mine.maxTake()) return;
    this.take.hands.push(sampleOf(hand, Boolean(message.mirror), frameSize(this.video)));
    this.take.shown.push(hand.landmarks);
  }

  spelling(state) {
    this.mine.spelling(state);
  }

  answered(message) {
    this.mine.answered(message);
  }

  say(message) {
    this.mine.say(message);
  }

  // ---------------------------------------------------------------- takes

  record(label, from = document.activeElement) {
    if (!label || this.mode === "counting" || this.mode === "recording" || this.mode === "saving") return;
    this.returnFocus = from instanceof HTMLElement ? from : null;
    this.take = { label, hands: [], shown: [] };
    this.ui.take.textContent = "";
    this.setMode("counting");
    const where = this.walk === null ? "" : ` (${this.walk + 1} of ${WALK.length})`;
    let n = COUNT;
    let lead = this.lead; // what the last step said (a kept take), said once more before the count
    this.lead = "";
    const tick = () => {
      if (n > 0) {
        this.ui.prompt.textContent = `${label} ${n}`;
        this.say(`${lead}Sign ${label}${where} in ${n}…`);
        lead = "";
        n -= 1;
        this.timer = setTimeout(tick, COUNT_STEP_MS);
        return;
      }
      this.setMode("recording");
      this.ui.prompt.textContent = `${label} ●`;
      this.say(`Recording ${label}: hold the sign.`);
      this.timer = setTimeout(() => this.review(), RECORD_MS);
    };
    tick();
  }

  review() {
    const { label, hands, shown } = this.take;
    this.setMode("review");
    this.ui.prompt.textContent = label;
    this.drawHands(shown);
    if (!hands.length) {
      this.ui.take.textContent = `No hand of ${label} was caught.`;
      this.say("No hand was seen in that second: hold your hand up where the camera sees it, then record again.");
      this.ui.again.focus();
      return;
    }
    this.ui.take.textContent = `${hands.length} hands of ${label} caught.`;
    this.say(`Caught ${hands.length} hands of ${label}. Keep them, record again or discard them.`);
    this.ui.keep.focus();
  }

  async keep() {
    const take = this.take;
    if (this.mode !== "review" || !take || !take.hands.length) return;
    this.setMode("saving");
    try {
      await this.mine.ensureProfile();
      this.mine.show(await this.mine.client.addTake(take.label, take.hands));
    } catch (err) {
      this.setMode("review");
      this.say(`Not kept: ${err.message}`);
      return;
    }
    this.take = null;
    this.mode = "idle";
    const profile = this.mine.profile;
    const count = (profile && profile.labels && profile.labels[take.label]) || take.hands.length;
    this.say(`Kept ${take.hands.length} samples of ${take.label}: you have ${count} now.`);
    this.ui.take.textContent = `Kept ${take.hands.length} hands of ${take.label}.`;
    if (this.walk !== null) {
      this.lead = `Kept ${take.label}. `;
      this.nextLetter();
    } else {
      this.idle();
    }
  }

  discard() {
    this.take = null;
    this.say("Discarded: nothing was sent to the server.");
    this.ui.take.textContent = "";
    this.drawHands([]);
    this.idle();
  }

  cancel() {
    clearTimeout(this.timer);
    const walking = this.walk !== null;
    this.walk = null;
    this.take = null;
    this.ui.take.textContent = "";
    this.drawHands([]);
    this.say(walking ? "Stopped the walk-through." : "Cancelled: nothing was recorded.");
    this.idle();
  }

  idle() {
    this.setMode("idle");
    this.ui.prompt.textContent = "";
    const back = this.returnFocus;
    this.returnFocus = null;
    if (back && back.isConnected && !back.hidden) back.focus();
  }

  // ---------------------------------------------------------------- the alphabet

  startWalk() {
    if (this.mode === "counting" || this.mode === "recording" || this.mode === "saving") return;
    this.walk = 0;
    this.record(WALK[0], this.ui.alphabet);
  }

  nextLetter() {
    this.walk += 1;
    if (this.walk >= WALK.length) {
      this.walk = null;
      this.setMode("idle");
      this.ui.prompt.textContent = "";
      this.say(`That was the whole alphabet (${WALK.length} letters; J and Z move, record them on their own). ` +
        "Train your model now.");
      $("teach-train").focus();
      return;
    }
    this.record(WALK[this.walk], this.ui.alphabet);
  }

  setMode(mode) {
    this.mode = mode;
    const { ui } = this;
    const walking = this.walk !== null;
    const running = mode === "counting" || mode === "recording";
    const reviewing = mode === "review";
    ui.keep.hidden = !reviewing || !this.take || !this.take.hands.length;
    ui.keep.textContent = walking ? "Keep, next letter" : "Keep";
    ui.again.hidden = !reviewing;
    ui.discard.hidden = !reviewing || walking;
    ui.skip.hidden = !reviewing || !walking;
    ui.stop.hidden = !walking || !(running || reviewing);
    ui.cancel.hidden = !running || walking;
    ui.keep.disabled = mode === "saving";
    if (walking && running && !ui.stop.contains(document.activeElement)) ui.stop.focus();
  }

  // ---------------------------------------------------------------- drawing

  /** The labels to record, with how many samples the profile has of each. */
  showCounts(profile) {
    const counts = (profile && profile.labels) || {};
    const custom = Object.keys(counts).filter((l) => !LETTERS.includes(l) && !SPECIAL.has(l)).sort();
    for (const label of [...LETTERS, ...custom]) {
      let button = this.buttons.get(label);
      if (!button) {
        button = document.createElement("button");
        button.type = "button";
        button.dataset.label = label;
        button.append(document.createElement("span"), document.createElement("span"));
        button.firstChild.className = "teach-label";
        button.lastChild.className = "teach-count";
        button.firstChild.textContent = label;
        button.addEventListener("click", () => this.record(label, button));
        this.ui.labels.appendChild(button);
        this.buttons.set(label, button);
      }
      const n = counts[label] || 0;
      button.lastChild.textContent = String(n);
      button.setAttribute("aria-label", `${label}: ${n} sample${n === 1 ? "" : "s"}`);
      button.title = `Record ${label}`;
    }
  }

  /** Hands (landmarks normalised to the frame) fitted into the small canvas, mirrored like the
   * video; the last one solid, the others faint. */
  drawHands(hands) {
    const { canvas } = this.ui;
    const ctx = this.ctx;
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    if (!hands.length) return;
    const [w, h] = frameSize(this.video);
    const all = hands.map((lm) => lm.map((p) => [-p[0] * w, p[1] * h]));
    const flat = all.flat();
    const xs = flat.map((p) => p[0]);
    const ys = flat.map((p) => p[1]);
    const [x0, y0] = [Math.min(...xs), Math.min(...ys)];
    const span = Math.max(Math.max(...xs) - x0, Math.max(...ys) - y0, 1);
    const pad = 14;
    const scale = (canvas.width - 2 * pad) / span;
    const at = ([x, y]) => [pad + (x - x0) * scale, pad + (y - y0) * scale];
    all.forEach((points, i) => {
      const last = i === all.length - 1;
      ctx.globalAlpha = last ? 1 : Math.max(0.08, 1 / all.length);
      ctx.strokeStyle = "#1b1b1b";
      ctx.lineWidth = last ? 3 : 1.5;
      ctx.beginPath();
      for (const [a, b] of BONES) {
        const [ax, ay] = at(points[a]);
        const [bx, by] = at(points[b]);
        ctx.moveTo(ax, ay);
        ctx.lineTo(bx, by);
      }
      ctx.stroke();
      if (!last) return;
      ctx.fillStyle = "#0b5fff";
      for (const p of points) {
        const [x, y] = at(p);
        ctx.beginPath();
        ctx.arc(x, y, 3.5, 0, 2 * Math.PI);
        ctx.fill();
      }
    });
    ctx.globalAlpha = 1;
  }

  // ---------------------------------------------------------------- controls

  wire() {
    const { ui } = this;
    const recordNew = () => {
      const typed = ui.newLabel.value.trim();
      const label = typed.length === 1 && /[a-z]/i.test(typed) ? typed.toUpperCase() : typed;
      const problem = labelProblem(label);
      if (problem) {
        this.say(problem);
        ui.newLabel.focus();
        return;
      }
      this.record(label, ui.newLabel);
    };
    $("teach-new-record").addEventListener("click", recordNew);
    ui.newLabel.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        recordNew();
      }
    });
    ui.alphabet.addEventListener("click", () => this.startWalk());
    ui.keep.addEventListener("click", () => this.keep());
    ui.again.addEventListener("click", () => this.record(this.take ? this.take.label : "", this.returnFocus));
    ui.discard.addEventListener("click", () => this.discard());
    ui.skip.addEventListener("click", () => {
      this.take = null;
      this.nextLetter();
    });
    ui.cancel.addEventListener("click", () => this.cancel());
    ui.stop.addEventListener("click", () => this.cancel());
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && (this.mode === "counting" || this.mode === "recording")) this.cancel();
    });
  }
}
