// fingerspell page: camera -> the hand in each frame, found here (on-device mode) or by the
// server from JPEG frames (server mode), over a WebSocket -> letters and text.
// Plain ES modules, no build step: camera.js (getUserMedia, frames), landmarker.js (MediaPipe's
// hand landmarker in the page), transport.js (the frame stream), view.js (the letter, the hand,
// the speed), text.js (the text and its edits), teach.js and teach_profile.js (the user's own
// samples and model, over profile.js and learn.js). This module wires them: a new camera frame
// is sent when the stream can take one, and each answer is shown. On-device mode is the default
// where the browser and the server allow it: no image leaves the page. In server mode, while the
// server follows a hand, the page sends the part of the camera frame around it at full
// resolution (a hand at arm's length keeps its pixels), else the whole frame scaled down. The
// server owns the text: the page renders its decoder's state, whichever mode runs.

import { FrameEncoder, cameraProblem, insecureProblem, openCamera, watchFrames } from "./camera.js";
import { deviceProblem, loadLandmarker } from "./landmarker.js";
import { load, save, STORE_DELEGATE, STORE_MIRROR, STORE_MODE } from "./storage.js";
import { TeachPanel } from "./teach.js";
import { TextPanel } from "./text.js";
import { frameStream } from "./transport.js";
import { View } from "./view.js";

const STATS_MS = 250;

function socketUrl() {
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${window.location.host}/ws`;
}

function main() {
  const $ = (id) => document.getElementById(id);
  const video = $("video");
  const mirrorBox = $("mirror");
  const view = new View();
  const frames = new FrameEncoder(video);
  let cameraOn = false;
  let frameReady = false; // a camera frame not sent yet
  let hand = null; // the hand in the server's last answer (landmarks normalised to the frame), or null
  let mirror = load(STORE_MIRROR, "false") === "true";
  // Where hands are found: "server" (frames sent) or "device" (hands sent); null until chosen,
  // and nothing is sent till then: a frame sent while the hand finder loads would leave the device.
  let mode = null;
  let landmarker = null; // the page's hand landmarker, once loaded
  let deviceInfo = null; // /health's on_device
  const deviceBox = $("on-device");
  const modeNote = $("mode-note");

  const stream = frameStream(socketUrl(), {
    onStatus: (message, kind) => view.setStatus(message, kind),
    onOpen: () => {
      hand = null; // a new stream follows nothing yet
      // The page holds the text: a restarted server gets it back, so nothing is lost.
      text.restore();
      stream.command(mode ? { type: "config", mirror, mode } : { type: "config", mirror });
      text.sendVocab();
      teach.streamOpened();
    },
    onReady: () => pump(),
  });
  const text = new TextPanel((message) => stream.command(message), (message) => view.notify(message));
  const teach = new TeachPanel({ command: (message) => stream.command(message), video });

  function showSpelling(spelling) {
    text.show(spelling);
    teach.spelling(spelling);
  }

  function pump() {
    if (!mode || !cameraOn || !frameReady || !frames.ready || !stream.canSend()) return;
    if (mode === "device") {
      frameReady = false;
      stream.sendFrame(landmarker.find(video));
      return;
    }
    frameReady = false;
    stream.sendFrame((hand && frames.handCrop(hand.landmarks)) || frames.wholeFrame());
  }

  function setMode(next, note) {
    mode = next;
    hand = null;
    deviceBox.checked = next === "device";
    modeNote.textContent = note;
    stream.setMode(next); // the text stays: one stream, one decoder, whichever way its hands come
    pump();
  }

  /** On-device mode where it can run (loading the landmarker first), else server mode, saying why. */
  async function chooseMode(wanted) {
    const problem = deviceProblem(deviceInfo);
    if (wanted === "server" || problem) {
      setMode("server", problem ? `Your frames go to the server to find your hand: ${problem}.`
        : "Your frames go to the server to find your hand.");
      deviceBox.disabled = Boolean(problem);
      return;
    }
    if (!landmarker) {
      modeNote.textContent = "Loading the hand finder…";
      try {
        landmarker = await loadLandmarker(deviceInfo, load(STORE_DELEGATE, "GPU"));
      } catch (err) {
        deviceInfo = { available: false, why: `the hand finder did not load (${(err && err.message) || err})` };
        chooseMode("server");
        return;
      }
    }
    setMode("device", "Your hand is found on this device: no video leaves it, only its 21 points.");
  }

  stream.onMessage((message, rtt) => {
    switch (message.type) {
      case "prediction":
        hand = message.hand && Array.isArray(message.hand.landmarks) ? message.hand : null;
        view.frameAnswered(message, rtt);
        view.showPrediction(message);
        teach.heard(message);
        if (stream.commandsOut() === 0) showSpelling(message.spelling);
        break;
      case "skipped":
        view.frameAnswered(message, rtt);
        break;
      case "state":
        showSpelling(message.spelling);
        break;
      case "profile":
        teach.answered(message);
        break;
      case "error":
        if (message.frame !== undefined) {
          hand = null; // a frame the server could not read: the next is a whole frame
          view.frameAnswered(message, rtt);
        }
        view.notify(`Server: ${message.error}`);
        break;
      default:
        break;
    }
  });

  function setMirror(on) {
    mirror = on;
    mirrorBox.checked = on;
    save(STORE_MIRROR, String(on));
    stream.command({ type: "config", mirror: on });
  }

  async function startCamera() {
    view.showCameraMessage("");
    const insecure = insecureProblem();
    if (insecure) {
      view.showCameraMessage(insecure);
      return;
    }
    try {
      await openCamera(video, () => {
        cameraOn = false;
        view.showCameraMessage("The camera stopped. Press Start camera to use it again.", true);
      });
    } catch (err) {
      view.showCameraMessage(cameraProblem(err), true);
      return;
    }
    cameraOn = true;
    pump();
  }

  function onKey(event) {
    if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
    const target = event.target;
    const onControl = target instanceof Element && target.closest("button, input, select, textarea, a");
    const typing = target instanceof Element && target.closest("input[type=text], textarea, [contenteditable]");
    if (typing) return;
    const key = event.key;
    if (key === "Backspace") {
      event.preventDefault();
      text.deleteLast();
    } else if (key === " " && !onControl) {
      event.preventDefault(); // Space on a focused button presses that button instead
      text.addSpace();
    } else if (key === "s" || key === "S") {
      text.speak();
    } else if (key === "c" || key === "C") {
      text.copy();
    } else if (key === "m" || key === "M") {
      setMirror(!mirror);
    } else if (key === "r" || key === "R") {
      text.revert();
    } else if (key === "1" || key === "2") {
      text.pickCandidate(Number(key));
    }
  }

  mirrorBox.checked = mirror;
  $("add-vocab").addEventListener("click", () => text.addVocab());
  const speak = $("speak");
  if (!("speechSynthesis" in window)) {
    speak.disabled = true;
    speak.title = "This browser cannot speak text";
  }
  speak.addEventListener("click", () => text.speak());
  $("copy").addEventListener("click", () => text.copy());
  $("delete").addEventListener("click", () => text.deleteLast());
  $("space").addEventListener("click", () => text.addSpace());
  $("clear").addEventListener("click", () => text.clear());
  mirrorBox.addEventListener("change", () => setMirror(mirrorBox.checked));
  deviceBox.addEventListener("change", () => {
    const wanted = deviceBox.checked ? "device" : "server";
    save(STORE_MODE, wanted);
    chooseMode(wanted);
  });
  $("start-camera").addEventListener("click", startCamera);
  document.addEventListener("keydown", onKey);
  window.addEventListener("online", () => { if (!stream.connected) stream.connect(); });
  setInterval(() => {
    view.showStats();
    const times = mode === "device" && landmarker ? [...landmarker.times].sort((a, b) => a - b) : [];
    $("device-time").textContent = times.length ? String(Math.round(times[Math.floor(times.length / 2)])) : "–";
  }, STATS_MS);
  watchFrames(video, () => {
    frameReady = true;
    pump();
  });
  teach.start();
  stream.connect();
  startCamera();
  fetch("/health").then((r) => r.json()).then((health) => { deviceInfo = health.on_device; })
    .catch(() => { deviceInfo = { available: false, why: "the server did not say whether it offers it" }; })
    .then(() => chooseMode(load(STORE_MODE, "device")));
}

main();
