// The Teach panel: record about a second of a sign as hand landmarks (the hands in the stream's
// answers; never frames), show the take and keep it or discard it, walk through the alphabet,
// train a personal model and read with it (or the default), learn as you sign, and the user's
// data: download, upload, delete. A take is posted only when kept, so discarding it sends
// nothing. The profile and its routes are profile.js; the samples and learning are learn.js.

import { LETTERS, WordLearner, sampleOf } from "./learn.js";
import { ProfileClient } from "./profile.js";
import { BONES } from "./view.js";

const COUNT = 3; // the countdown before a take: 3, 2, 1
const COUNT_STEP_MS = 700;
const RECORD_MS = 1000; // a take: about a second of the hand
const MAX_TAKE = 120; // hands a take at most (the server's limit, where the profile does not say)
const POLL_MS = 600; // how often a training's progress is asked for
const WALK = "ABCDEFGHIKLMNOPQRSTUVWXY"; // the alphabet's static letters: J and Z move
const SPECIAL = new Set(["nothing", "space", "del"]);
const MAX_LABEL = 64;
const READY = "Your model is ready";

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

/** What a model's card says it was taught, in words. */
function taught(card) {
  if (!card || typeof card.samples !== "number") return "trained on your samples";
  const signs = card.labels && typeof card.labels === "object" ? Object.keys(card.labels).length : 0;
  const took = typeof card.seconds === "number" ? ` in ${card.seconds.toFixed(1)} s` : "";
  return `taught ${signs ? `${signs} sign${signs === 1 ? "" : "s"} from ` : ""}${card.samples} samples${took}`;
}

function failure(model) {
  const why = model.message || "the server's log has the details";
  return /^training failed/i.test(why) ? `T${why.slice(1)}.` : `Training failed: ${why}.`;
}

export class TeachPanel {
  /**
   * ``command(message)`` sends a stream command (false while disconnected); ``video`` is the
   * camera's element (its size is the frame the answers' landmarks are normalised to).
   */
  constructor({ command, video }) {
    this.command = command;
    this.video = video;
    this.client = new ProfileClient();
    this.learner = new WordLearner();
    this.profile = null;
    this.mode = "idle"; // idle | counting | recording | review | saving
    this.take = null; // {label, hands: [record hands], shown: [answer landmarks]}
    this.walk = null; // the alphabet walk-through's place in WALK, or null
    this.timer = null;
    this.pollTimer = null;
    this.watching = false; // a training is followed: its end is announced
    this.streamUse = null; // what this stream was told to read with: null (nothing yet), default, personal
    this.returnFocus = null;
    this.lead = "";
    this.buttons = new Map(); // label -> its button
    this.ui = {
      status: $("teach-status"), labels: $("teach-labels"), newLabel: $("teach-new-label"), prompt: $("teach-prompt"),
      canvas: $("teach-hand"), take: $("teach-take"), keep: $("teach-keep"), again: $("teach-again"),
      discard: $("teach-discard"), skip: $("teach-skip"), cancel: $("teach-cancel"), stop: $("teach-stop"),
      alphabet: $("teach-alphabet"), train: $("teach-train"), progress: $("teach-progress"),
      modelState: $("teach-model-state"), use: $("teach-use"), learn: $("teach-learn"), learned: $("teach-learned"),
      download: $("teach-download"), upload: $("teach-upload"), file: $("teach-file"),
      modelDownload: $("teach-model-download"), delete: $("teach-delete"), takes: $("teach-takes"),
      takesCount: $("teach-takes-count"),
    };
    this.ctx = this.ui.canvas.getContext("2d");
    this.wire();
  }

  // ---------------------------------------------------------------- hooks for app.js

  /** Show the panel, and the profile if this browser has one. */
  start() {
    this.render();
    if (this.client.exists) this.refresh();
  }

  /** A (re)connected stream reads with the default model until told otherwise. */
  streamOpened() {
    this.streamUse = null;
    this.applyModel();
  }

  /** Each frame's answer: the hand drawn while a take runs, caught while it records, and learnt from. */
  heard(message) {
    const hand = message.hand && Array.isArray(message.hand.landmarks) ? message.hand : null;
    if (this.mode === "counting" || this.mode === "recording") this.drawHands(hand ? [hand.landmarks] : []);
    if (!hand) return;
    const sample = sampleOf(hand, Boolean(message.mirror), this.frameSize());
    if (this.mode === "recording" && this.take.hands.length < this.maxTake()) {
      this.take.hands.push(sample);
      this.take.shown.push(hand.landmarks);
    }
    if (this.learning()) this.learner.frame(message.letter, message.confidence || 0, sample);
  }

  /** The text state the page showed: learning as you sign follows its words. */
  spelling(state) {
    if (!this.learning()) return;
    const takes = this.learner.spelling(state);
    if (takes) this.postLearned(takes);
  }

  /** The stream's answer to a profile command (or its news that a training ended). */
  answered(message) {
    this.streamUse = message.use;
    const personal = message.use === "personal";
    if (personal && this.ui.status.textContent.startsWith(READY)) return; // it says so already
    this.say(personal ? "Reading your signs with your model." : "Reading your signs with the default model.");
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
      await this.ensureProfile();
      this.show(await this.client.addTake(take.label, take.hands));
    } catch (err) {
      this.setMode("review");
      this.say(`Not kept: ${err.message}`);
      return;
    }
    this.take = null;
    this.mode = "idle";
    const count = (this.profile && this.profile.labels && this.profile.labels[take.label]) || take.hands.length;
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
      this.ui.train.focus();
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

  // ---------------------------------------------------------------- the model

  async train() {
    this.ui.train.disabled = true;
    try {
      const profile = await this.client.train();
      this.say("Training your model: the page keeps reading with the current one meanwhile.");
      this.watching = true;
      this.show(profile);
    } catch (err) {
      this.say(`Not trained: ${err.message}`);
      this.render();
    }
  }

  async setUse(personal) {
    try {
      this.show(await this.client.change({ use: personal ? "personal" : "default" }));
    } catch (err) {
      this.say(err.message);
      this.render();
    }
  }

  /** Tell the stream which model reads this user's signs (once a stream, and on each change). */
  applyModel() {
    if (!this.client.exists) return;
    const model = this.profile && this.profile.model;
    const want = this.profile && this.profile.use === "personal" && model && model.state === "ready" ? "personal" : "default";
    if (!this.profile || want === this.streamUse) return;
    if (want === "default" && this.streamUse === null) {
      this.streamUse = "default"; // a new stream reads with the default model already
      return;
    }
    if (this.command({ type: "profile", token: this.client.token, use: want })) this.streamUse = want;
  }

  // ---------------------------------------------------------------- learning as you sign

  learning() {
    return Boolean(this.profile && this.profile.learn && this.client.exists);
  }

  async setLearn(on) {
    this.learner.reset();
    try {
      if (on) await this.ensureProfile();
      if (this.client.exists) this.show(await this.client.change({ learn: on }));
      this.say(on ? "Learning as you sign: each word you keep adds its letters to your samples."
        : "Learning as you sign is off: nothing is collected.");
    } catch (err) {
      this.say(err.message);
      this.render();
    }
  }

  async postLearned(takes) {
    try {
      this.show(await this.client.addLearned(takes));
      this.lastLearned = takes.map((t) => t.label).join(" ");
      this.render();
    } catch (err) {
      this.say(`Learning as you sign: ${err.message}`);
    }
  }

  // ---------------------------------------------------------------- the user's data

  async download(what) {
    try {
      const blob = what === "model" ? await this.client.model() : await this.client.samples();
      const name = what === "model" ? "fingerspell-personal-model.zip" : "fingerspell-samples.jsonl";
      const link = document.createElement("a");
      link.href = URL.createObjectURL(blob);
      link.download = name;
      document.body.appendChild(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 10000);
      this.say(`Saved ${name} to your downloads.`);
    } catch (err) {
      this.say(err.message);
    }
  }

  async upload(file) {
    try {
      await this.ensureProfile();
      const answer = await this.client.upload(file);
      this.show((answer && answer.profile) || answer);
      this.say(`Added the samples of ${file.name}.`);
    } catch (err) {
      this.say(`Not uploaded: ${err.message}`);
    }
  }

  async destroy() {
    if (!window.confirm("Delete all your samples, your model and your profile from this server?")) return;
    if (this.streamUse === "personal" && this.command({ type: "profile", token: this.client.token, use: "default" })) {
      this.streamUse = "default";
    }
    try {
      await this.client.destroy();
    } catch (err) {
      this.say(err.message);
      return;
    }
    this.profile = null;
    this.learner.reset();
    this.render();
    this.say("Deleted: this server keeps nothing of yours now.");
  }

  async removeTake(batch) {
    try {
      this.show(await this.client.remove({ batch }));
      this.say("Removed that take.");
    } catch (err) {
      this.say(err.message);
    }
  }

  // ---------------------------------------------------------------- the profile

  async ensureProfile() {
    const made = await this.client.create();
    if (made) this.show(made);
  }

  async refresh() {
    try {
      this.show(await this.client.get());
    } catch (err) {
      this.profile = null;
      this.render();
      this.say(err.message);
    }
  }

  /** A profile the server answered: shown, and a training followed until it ends. */
  show(profile) {
    if (!profile || typeof profile !== "object") return;
    this.profile = profile;
    const model = profile.model || {};
    if (model.state === "training") {
      this.watching = true; // its end is announced
      clearTimeout(this.pollTimer);
      this.pollTimer = setTimeout(() => this.refresh(), POLL_MS);
    } else if (this.watching) {
      this.watching = false;
      if (model.state === "ready") {
        this.say(`${READY}: ${taught(model.card)}.` +
          (profile.use === "personal" ? " The page reads your signs with it now." : ""));
      } else if (model.state === "failed") {
        this.say(failure(model));
      }
    }
    this.render();
    this.applyModel();
  }

  maxTake() {
    const limits = (this.profile && this.profile.limits) || {};
    return Number(limits.max_take) > 0 ? Number(limits.max_take) : MAX_TAKE;
  }

  frameSize() {
    return [this.video.videoWidth || 640, this.video.videoHeight || 480];
  }

  say(message) {
    this.ui.status.textContent = message;
  }

  // ---------------------------------------------------------------- drawing

  render() {
    const { ui } = this;
    const profile = this.profile;
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
        ui.labels.appendChild(button);
        this.buttons.set(label, button);
      }
      const n = counts[label] || 0;
      button.lastChild.textContent = String(n);
      button.setAttribute("aria-label", `${label}: ${n} sample${n === 1 ? "" : "s"}`);
      button.title = `Record ${label}`;
    }
    const samples = (profile && profile.samples) || 0;
    const model = (profile && profile.model) || { state: "none" };
    const training = model.state === "training";
    ui.train.disabled = !samples || training;
    ui.train.textContent = model.state === "ready" ? "Train my model again" : "Train my model";
    ui.progress.hidden = !training;
    ui.progress.value = Number(model.progress) || 0;
    ui.modelState.textContent = {
      none: samples ? "No model yet: train one from your samples." : "No model yet: keep a few takes first.",
      training: `Training… ${Math.round((Number(model.progress) || 0) * 100)}%${model.message ? ` (${model.message})` : ""}`,
      ready: `Ready: ${taught(model.card)}.`,
      failed: failure(model),
    }[model.state] || "";
    ui.use.disabled = model.state !== "ready";
    ui.use.checked = Boolean(profile && profile.use === "personal" && model.state === "ready");
    ui.learn.checked = this.learning();
    const learned = ((profile && profile.takes) || []).filter((t) => t.source === "learn").reduce((n, t) => n + (t.n || 0), 0);
    ui.learned.textContent = this.learning()
      ? `On: ${learned} sample${learned === 1 ? "" : "s"} collected from words you kept` +
        (this.lastLearned ? ` (the last: ${this.lastLearned}).` : ".")
      : "Off: nothing is collected while you sign.";
    ui.download.disabled = !samples;
    ui.delete.disabled = !this.client.exists;
    ui.modelDownload.disabled = model.state !== "ready";
    this.renderTakes((profile && profile.takes) || []);
  }

  renderTakes(takes) {
    this.ui.takesCount.textContent = String(takes.length);
    this.ui.takes.replaceChildren(...takes.map((take) => {
      const item = document.createElement("li");
      const text = document.createElement("span");
      text.textContent = `${take.label}: ${take.n} sample${take.n === 1 ? "" : "s"} (${take.source})`;
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = "Remove";
      button.setAttribute("aria-label", `Remove this take of ${take.label} (${take.n} samples)`);
      button.addEventListener("click", () => this.removeTake(take.batch));
      item.append(text, button);
      return item;
    }));
  }

  /** Hands (landmarks normalised to the frame) fitted into the small canvas, mirrored like the
   * video; the last one solid, the others faint. */
  drawHands(hands) {
    const { canvas } = this.ui;
    const ctx = this.ctx;
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    if (!hands.length) return;
    const [w, h] = this.frameSize();
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
    ui.train.addEventListener("click", () => this.train());
    ui.use.addEventListener("change", () => this.setUse(ui.use.checked));
    ui.learn.addEventListener("change", () => this.setLearn(ui.learn.checked));
    ui.download.addEventListener("click", () => this.download("samples"));
    ui.modelDownload.addEventListener("click", () => this.download("model"));
    ui.upload.addEventListener("click", () => ui.file.click());
    ui.file.addEventListener("change", () => {
      const file = ui.file.files && ui.file.files[0];
      ui.file.value = "";
      if (file) this.upload(file);
    });
    ui.delete.addEventListener("click", () => this.destroy());
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && (this.mode === "counting" || this.mode === "recording")) this.cancel();
    });
  }
}
