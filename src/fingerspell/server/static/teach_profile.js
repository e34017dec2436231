// The Teach panel's profile half: the status line, the personal model (training with its
// progress, the switch between it and the default model, the stream told which reads), learning
// as you sign, and the user's data (download, upload, delete, the takes). The takes themselves
// are teach.js; the routes profile.js; the samples and learning learn.js.

import { WordLearner, frameSize, sampleOf } from "./learn.js";
import { ProfileClient } from "./profile.js";

const MAX_TAKE = 120; // hands a take at most (the server's limit, where the profile does not say)
const POLL_MS = 600; // how often a training's progress is asked for
const READY = "Your model is ready";

const $ = (id) => document.getElementById(id);

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

export class ProfilePanel {
  /**
   * ``command(message)`` sends a stream command (false while disconnected); ``video`` is the
   * camera's element (its size is the frame the answers' landmarks are normalised to);
   * ``onProfile(profile)`` hears each profile the server answers (null once deleted).
   */
  constructor({ command, video, onProfile }) {
    this.command = command;
    this.video = video;
    this.onProfile = onProfile;
    this.client = new ProfileClient();
    this.learner = new WordLearner();
    this.profile = null;
    this.pollTimer = null;
    this.watching = false; // a training is followed: its end is announced
    this.streamUse = null; // what this stream was told to read with: null (nothing yet), default, personal
    this.lastLearned = "";
    this.ui = {
      status: $("teach-status"), train: $("teach-train"), progress: $("teach-progress"),
      modelState: $("teach-model-state"), use: $("teach-use"), learn: $("teach-learn"), learned: $("teach-learned"),
      download: $("teach-download"), upload: $("teach-upload"), file: $("teach-file"),
      modelDownload: $("teach-model-download"), delete: $("teach-delete"), takes: $("teach-takes"),
      takesCount: $("teach-takes-count"),
    };
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

  /** Each frame's answer, while learning as you sign: its top label and hand. */
  heard(message) {
    if (!this.learning() || !message.hand || !Array.isArray(message.hand.landmarks)) return;
    const sample = sampleOf(message.hand, Boolean(message.mirror), frameSize(this.video));
    this.learner.frame(message.letter, message.confidence || 0, sample);
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

  say(message) {
    this.ui.status.textContent = message;
  }

  // ---------------------------------------------------------------- drawing

  render() {
    const { ui } = this;
    const profile = this.profile;
    if (this.onProfile) this.onProfile(profile);
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

  wire() {
    const { ui } = this;
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
  }
}
