// Samples from the stream's answers: a hand as the profile stores it, and learning as you sign.
// No DOM here: the page feeds it what the stream answered and the text state it showed.

export const LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/**
 * A stream answer's hand as a landmark record's hand, as the model saw it: with ``mirror`` the
 * server recognised the frame flipped and gave the landmarks back in the sent frame, so they are
 * flipped again here (the handedness is already the flipped frame's). ``size``: the camera
 * frame's [width, height], which the landmarks are normalised to.
 */
export function sampleOf(hand, mirror, size) {
  const landmarks = hand.landmarks.map((p) => [mirror ? round(1 - p[0]) : p[0], p[1], p[2]]);
  return { landmarks, handedness: hand.handedness, image_size: [Math.round(size[0]), Math.round(size[1])] };
}

/** The camera frame's [width, height]: what the answers' landmarks are normalised to. */
export function frameSize(video) {
  return [video.videoWidth || 640, video.videoHeight || 480];
}

function round(v) {
  return Math.round(v * 1e4) / 1e4;
}

/**
 * Learning as you sign. For each word the user keeps (committed, and not undone before the next
 * word starts), one sample of each of its letters: the hand of the frame, since the word before,
 * whose top label was that letter with the highest score. A letter the model never put on top
 * in that word gets none: the word's letters say what was meant, but only such a frame says
 * which hand meant it. A custom sign (a label that commits its own text as a word) gives a
 * sample of itself, not of its letters.
 *
 * ``frame(label, score, hand)`` takes each answer's top label and hand; ``spelling(state)`` the
 * decoder's state as the page showed it, and returns ``[{label, hands: [hand]}]`` when the word
 * before has just been kept (null otherwise). It follows the words decoder's ``word`` (the letters
 * being signed) and ``choice`` (the last word's readings: a pick changes the kept word); with a
 * decoder that has no ``word``, the text's unfinished last word stands for it.
 */
export class WordLearner {
  constructor() {
    this.reset();
  }

  reset() {
    this.best = new Map(); // label -> {score, hand}: the best frame of each label since the last word
    this.signing = ""; // the letters of the word being signed
    this.text = null;
    this.pending = null; // the last word: {before, word, signed, best}, until the next one starts
  }

  frame(label, score, hand) {
    if (!hand || !label || label === "nothing") return;
    const seen = this.best.get(label);
    if (!seen || score > seen.score) this.best.set(label, { score, hand });
  }

  spelling(state) {
    if (!state || typeof state.text !== "string") return null;
    const text = state.text;
    const signing = "word" in state ? lettersOf(state.word) : unfinished(text);
    let kept = null;
    if (this.pending) kept = this.follow(state, text);
    if (this.pending && !this.signing && signing) kept = this.keep(); // the next word began
    // A word ends: its letters become the text, or a custom sign is written as a word by itself.
    const signed = this.signing || (this.text !== null && /^ ?\S+ $/.test(text.slice(this.text.length)) &&
      text.startsWith(this.text));
    if (!signing && signed && text !== this.text && /\S $/.test(text)) this.ended(state, text);
    this.signing = signing;
    this.text = text;
    return kept;
  }

  /** The last word as the text has it now: a pick changes it, an edit into it drops it, and a
   * word (or custom sign) after it keeps it. */
  follow(state, text) {
    const p = this.pending;
    const choice = state.choice;
    if (!text.startsWith(p.before)) {
      this.pending = null;
      return null;
    }
    const rest = text.slice(p.before.length);
    if (choice && choice.signed === p.signed && (rest === choice.chosen || rest === `${choice.chosen} `)) {
      p.word = choice.chosen; // picked another reading (or back to the letters as signed)
      return null;
    }
    if (rest !== p.word && !rest.startsWith(`${p.word} `)) {
      this.pending = null; // deleted into, cleared or replaced: not kept
      return null;
    }
    return rest.slice(p.word.length).trim() ? this.keep() : null;
  }

  ended(state, text) {
    const choice = state.choice;
    let word = text.slice(0, -1).split(/\s/).pop();
    let signed = word;
    if (choice && text.endsWith(`${choice.chosen} `)) {
      word = choice.chosen;
      signed = choice.signed;
    }
    this.pending = { before: text.slice(0, text.length - word.length - 1), word, signed, best: this.best };
    this.best = new Map();
  }

  keep() {
    const { word, best } = this.pending;
    this.pending = null;
    // A custom sign's label is the text it writes; its letters were not signed.
    const sign = word.length > 1 && best.has(word);
    const labels = sign ? [word] : new Set([...word.toUpperCase()].filter((c) => LETTERS.includes(c)));
    const takes = [];
    for (const label of labels) {
      const seen = best.get(label);
      if (seen) takes.push({ label, hands: [seen.hand] });
    }
    return takes.length ? takes : null;
  }
}

function lettersOf(word) {
  return word && Array.isArray(word.letters) ? word.letters.join("") : "";
}

function unfinished(text) {
  const m = /(\S+)$/.exec(text);
  return m ? m[1] : "";
}
