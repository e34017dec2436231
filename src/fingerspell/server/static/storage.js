// What the page keeps in localStorage: the text, the mirror switch, the user's words and the
// token of the user's profile (the key to their samples on the server: nothing else opens them).
// Storage may be blocked (private mode): the page then works from memory alone.

export const STORE_TEXT = "fingerspell.text";
export const STORE_MIRROR = "fingerspell.mirror";
export const STORE_VOCAB = "fingerspell.vocab";
export const STORE_TOKEN = "fingerspell.profile";
export const STORE_MODE = "fingerspell.mode"; // "device" or "server": where the user chose hands be found
export const STORE_DELEGATE = "fingerspell.delegate"; // "CPU" skips the GPU try (a machine whose GPU is slow)

export function load(key, fallback) {
  try {
    const value = window.localStorage.getItem(key);
    return value === null ? fallback : value;
  } catch (err) {
    return fallback; // storage blocked (private mode): the text lives only in the page
  }
}

export function save(key, value) {
  try {
    window.localStorage.setItem(key, value);
  } catch (err) {
    /* storage blocked or full: nothing to do */
  }
}

export function forget(key) {
  try {
    window.localStorage.removeItem(key);
  } catch (err) {
    /* storage blocked: nothing was kept */
  }
}
