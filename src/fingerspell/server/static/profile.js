// The user's profile on the server: their samples (hand landmarks, never images) and their
// personal model, behind a token this browser keeps in localStorage. One method a route (the
// routes are in docs/protocol.md); each answers what the server sent (the profile, mostly) or
// throws a ProfileError whose message says what to do. The profile is made lazily, by
// ``create()``, only when the user first keeps a take, uploads samples or turns learning on.

import { STORE_TOKEN, forget, load, save } from "./storage.js";

export class ProfileError extends Error {
  constructor(message, status) {
    super(message);
    this.name = "ProfileError";
    this.status = status; // 0: the server could not be reached
  }
}

const GONE = "The server no longer has this browser's profile (it was deleted, or the server keeps its data " +
  "elsewhere now). A new one is made when you keep a take.";
const ABSENT = "This server does not keep profiles (an older fingerspell): teaching is not available here.";

export class ProfileClient {
  constructor() {
    this.token = load(STORE_TOKEN, "") || null;
  }

  /** True once this browser has a profile on the server (as far as it knows). */
  get exists() {
    return Boolean(this.token);
  }

  /** Forget the token (the profile is gone, or the user deleted it). */
  drop() {
    this.token = null;
    forget(STORE_TOKEN);
  }

  /** Make the profile if this browser has none yet; its profile object, or null if it had one. */
  async create() {
    if (this.token) return null;
    const doc = await this.request("POST", "/profiles");
    this.token = doc.token;
    save(STORE_TOKEN, doc.token);
    return doc.profile;
  }

  get() {
    return this.request("GET", "/profile");
  }

  /** A take of the Teach panel: ``hands`` are landmark records' hands of one ``label``. */
  async addTake(label, hands) {
    return (await this.request("POST", "/profile/samples", { json: { label, source: "teach", hands } })).profile;
  }

  /** What learning as you sign collected from one kept word: ``takes`` = [{label, hands}]. */
  async addLearned(takes) {
    return (await this.request("POST", "/profile/samples", { json: { source: "learn", takes } })).profile;
  }

  /** Remove one take (``{batch}``) or every sample of a label (``{label}``). */
  remove(which) {
    const query = new URLSearchParams(which).toString();
    return this.request("DELETE", `/profile/samples?${query}`);
  }

  change(fields) {
    return this.request("PATCH", "/profile", { json: fields });
  }

  train() {
    return this.request("POST", "/profile/train");
  }

  /** The samples as a landmark records file (a Blob). */
  async samples() {
    return (await this.request("GET", "/profile/samples", { raw: true })).blob();
  }

  /** The personal model as a zip (a Blob). */
  async model() {
    return (await this.request("GET", "/profile/model", { raw: true })).blob();
  }

  /** Add the samples of a landmark records file (a File, as downloaded) to the profile's. */
  upload(file) {
    return this.request("POST", "/profile/samples/upload", { body: file, type: "application/x-ndjson" });
  }

  /** Delete the profile, its samples and its model on the server, and forget the token. */
  async destroy() {
    if (this.token) await this.request("DELETE", "/profile");
    this.drop();
  }

  async request(method, path, { json, body, type, raw = false } = {}) {
    const headers = {};
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    if (json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(json);
    } else if (type) {
      headers["Content-Type"] = type;
    }
    let resp;
    try {
      resp = await fetch(path, { method, headers, body, cache: "no-store", credentials: "omit" });
    } catch (err) {
      throw new ProfileError("The server cannot be reached: try again once it is back.", 0);
    }
    if ((resp.status === 401 || resp.status === 403) && this.token) {
      this.drop();
      throw new ProfileError(GONE, resp.status);
    }
    if (!resp.ok) {
      let message = null;
      try {
        message = (await resp.json()).error;
      } catch (err) {
        message = null;
      }
      if (resp.status === 404 && (!message || message === "not found")) message = ABSENT;
      throw new ProfileError(message || `The server refused this (${resp.status}).`, resp.status);
    }
    if (raw) return resp;
    return resp.status === 204 ? null : resp.json();
  }
}
