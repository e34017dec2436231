// The spelled text: the server's decoder owns it; this module renders the state the server
// sends (text, the word being signed, the next letter's progress, other readings of the last
// word) and turns the user's edits into commands. It keeps the last text it was shown, to give
// it back to a restarted server, and only while disconnected edits its own copy.

import { SHOWN } from "./view.js";
import { load, save, STORE_TEXT, STORE_VOCAB } from "./storage.js";

const $ = (id) => document.getElementById(id);

export class TextPanel {
  /**
   * ``command(message)`` sends a command to the server (false while disconnected);
   * ``notify(message)`` shows a short notice.
   */
  constructor(command, notify) {
    this.command = command;
    this.notify = notify;
    this.ui = {
      text: $("text"), word: $("word"), pending: $("pending"), choices: $("choices"), vocab: $("vocab"),
      progressBar: $("progress-bar"),
    };
    this.text = load(STORE_TEXT, "");
    this.vocab = load(STORE_VOCAB, "");
    this.choice = null;
    this.ui.text.textContent = this.text;
    this.ui.vocab.value = this.vocab;
  }

  /** Give a (re)connected server the page's text. */
  restore() {
    this.command({ type: "set_text", text: this.text });
  }

  show(spelling) {
    if (!spelling) return;
    const { ui } = this;
    this.setText(spelling.text || "");
    const letters = spelling.word && Array.isArray(spelling.word.letters) ? spelling.word.letters.join("") : "";
    if (ui.word.textContent !== letters) ui.word.textContent = letters;
    this.showChoice(spelling.choice || null);
    const pending = spelling.pending ? SHOWN[spelling.pending] || spelling.pending : "";
    if (ui.pending.textContent !== pending) ui.pending.textContent = pending;
    ui.progressBar.style.width = `${Math.round((spelling.progress || 0) * 100)}%`;
  }

  showChoice(choice) {
    const key = choice ? JSON.stringify(choice) : "";
    if (key === (this.choice ? JSON.stringify(this.choice) : "")) return;
    this.choice = choice;
    const items = [];
    if (choice && choice.options.length > 1) {
      const label = document.createElement("span");
      label.textContent = `${choice.chosen}:`;
      items.push(label);
      let n = 0;
      for (const option of choice.options) {
        if (option === choice.chosen) continue;
        const button = document.createElement("button");
        button.type = "button";
        const signed = option === choice.signed;
        if (!signed) n += 1;
        button.textContent = signed ? `as signed: ${option}` : option;
        button.title = signed ? "Back to the letters as signed (R)" : `Use this word instead (${n})`;
        button.dataset.option = option;
        button.setAttribute("aria-keyshortcuts", signed ? "R" : String(n));
        button.addEventListener("click", () => this.pick(option));
        items.push(button);
      }
    }
    this.ui.choices.replaceChildren(...items);
    this.ui.choices.hidden = items.length === 0;
  }

  setText(text) {
    if (text === this.text && this.ui.text.textContent === text) return;
    this.text = text;
    this.ui.text.textContent = text;
    save(STORE_TEXT, text);
  }

  // ---------------------------------------------------------------- the last word's readings

  pick(option) {
    if (!this.command({ type: "pick", option })) {
      this.notify("Not connected: the word can be changed once the server is back.");
    }
  }

  /** Back to the letters as signed; pressed again, back to the word the lexicon chose. */
  revert() {
    const choice = this.choice;
    if (!choice) return;
    this.pick(choice.chosen === choice.signed ? choice.options[0] : choice.signed);
  }

  /** The ``n``th other word (1 or 2). */
  pickCandidate(n) {
    const choice = this.choice;
    if (!choice) return;
    const candidates = choice.options.filter((o) => o !== choice.signed && o !== choice.chosen);
    if (candidates[n - 1]) this.pick(candidates[n - 1]);
  }

  // ---------------------------------------------------------------- the user's words

  sendVocab() {
    const words = this.vocab.split(/[\s,;]+/).map((w) => w.trim()).filter((w) => w);
    if (words.length) this.command({ type: "vocab", words });
  }

  addVocab() {
    this.vocab = this.ui.vocab.value;
    save(STORE_VOCAB, this.vocab);
    this.sendVocab();
    this.notify("Your words are used from the next word on.");
  }

  // ---------------------------------------------------------------- edits
  // Edits are the server's: the page sends the command and shows the state it answers. Only
  // while disconnected does the page delete or clear in its own copy, given back on reconnect.

  deleteLast() {
    if (!this.command({ type: "backspace" }) && this.text) this.setText(Array.from(this.text).slice(0, -1).join(""));
  }

  addSpace() {
    if (!this.command({ type: "space" })) this.notify("Not connected: a space can be added once the server is back.");
  }

  clear() {
    if (!this.command({ type: "clear" })) this.setText("");
    this.notify("Text cleared");
  }

  // ---------------------------------------------------------------- output

  speak() {
    const text = this.text.trim();
    if (!("speechSynthesis" in window)) {
      this.notify("This browser cannot speak text.");
      return;
    }
    if (!text) {
      this.notify("Nothing to speak yet.");
      return;
    }
    window.speechSynthesis.cancel();
    const utterance = new SpeechSynthesisUtterance(text.toLowerCase());
    utterance.lang = "en-US";
    window.speechSynthesis.speak(utterance);
  }

  async copy() {
    const text = this.text;
    if (!text) {
      this.notify("Nothing to copy yet.");
      return;
    }
    let ok = false;
    if (navigator.clipboard && window.isSecureContext) {
      try {
        await navigator.clipboard.writeText(text);
        ok = true;
      } catch (err) {
        ok = false;
      }
    }
    if (!ok) ok = copyFallback(text);
    this.notify(ok ? "Copied to the clipboard." : "Could not copy: select the text and copy it by hand.");
  }
}

function copyFallback(text) {
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.style.position = "fixed";
  area.style.top = "-1000px";
  document.body.appendChild(area);
  area.select();
  let ok = false;
  try {
    ok = document.execCommand("copy");
  } catch (err) {
    ok = false;
  }
  area.remove();
  return ok;
}
