// fingerspell page: camera -> JPEG frames over a WebSocket -> letters and text.
// Plain script, no build step. One frame is in flight at a time: the next is sent when the
// server answers, so the server never works on stale frames and latency stays one round trip.
// The server owns the text: this page renders its decoder's state and sends edits as commands.
// It keeps the last text it was shown, to give it back to a restarted server.
"use strict";

(() => {
  const MAX_W = 640;
  const MAX_H = 480;
  const JPEG_QUALITY = 0.8;
  const LOST_FRAME_MS = 5000; // an answer this late is not coming (dropped socket): send again
  const RECONNECT_MIN_MS = 500;
  const RECONNECT_MAX_MS = 10000;
  const STORE_TEXT = "fingerspell.text";
  const STORE_MIRROR = "fingerspell.mirror";
  const STORE_VOCAB = "fingerspell.vocab";
  // MediaPipe's 21 hand points: wrist, then four per finger from thumb to little finger.
  const BONES = [[0, 1], [1, 2], [2, 3], [3, 4], [0, 5], [5, 6], [6, 7], [7, 8], [5, 9], [9, 10], [10, 11],
    [11, 12], [9, 13], [13, 14], [14, 15], [15, 16], [13, 17], [0, 17], [17, 18], [18, 19], [19, 20]];
  const SHOWN = { nothing: "–", space: "␣", del: "⌫" };

  const $ = (id) => document.getElementById(id);
  const ui = {
    status: $("status"), video: $("video"), overlay: $("overlay"), cameraMessage: $("camera-message"),
    startCamera: $("start-camera"), fps: $("fps"), latency: $("latency"), serverTime: $("server-time"),
    letter: $("letter"), confidence: $("confidence"), confidenceBar: $("confidence-bar"), top: $("top"),
    text: $("text"), word: $("word"), pending: $("pending"), choices: $("choices"), vocab: $("vocab"),
    addVocab: $("add-vocab"), progressBar: $("progress-bar"), speak: $("speak"), copy: $("copy"),
    del: $("delete"), space: $("space"), clear: $("clear"), mirror: $("mirror"), notice: $("notice"),
  };
  const offscreen = document.createElement("canvas");
  const offscreenCtx = offscreen.getContext("2d");
  const overlayCtx = ui.overlay.getContext("2d");

  const state = {
    ws: null,
    attempts: 0,
    reconnectTimer: null,
    text: load(STORE_TEXT, ""),
    mirror: load(STORE_MIRROR, "false") === "true",
    vocab: load(STORE_VOCAB, ""),
    choice: null,
    cameraOn: false,
    frameReady: false,
    inFlight: false,
    sentAt: 0,
    commandsOut: 0, // commands not yet answered: frame answers may predate them
    shownLetter: null,
    rtts: [],
    serverTimes: [],
    answerTimes: [],
  };

  // ------------------------------------------------------------------ storage

  function load(key, fallback) {
    try {
      const value = window.localStorage.getItem(key);
      return value === null ? fallback : value;
    } catch (err) {
      return fallback; // storage blocked (private mode): the text lives only in the page
    }
  }

  function save(key, value) {
    try {
      window.localStorage.setItem(key, value);
    } catch (err) {
      /* storage blocked or full: nothing to do */
    }
  }

  // ------------------------------------------------------------------ connection

  function socketUrl() {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${window.location.host}/ws`;
  }

  function setStatus(message, kind) {
    ui.status.textContent = message;
    ui.status.className = `status ${kind || ""}`;
  }

  function connect() {
    clearTimeout(state.reconnectTimer);
    state.reconnectTimer = null;
    if (state.ws) return;
    let ws;
    try {
      ws = new WebSocket(socketUrl());
    } catch (err) {
      scheduleReconnect("");
      return;
    }
    ws.binaryType = "arraybuffer";
    state.ws = ws;
    setStatus(state.attempts ? "Reconnecting…" : "Connecting…");
    ws.onopen = () => {
      state.attempts = 0;
      state.inFlight = false;
      state.commandsOut = 0;
      setStatus("Connected", "ok");
      // The page holds the text: a restarted server gets it back, so nothing is lost.
      command({ type: "set_text", text: state.text });
      command({ type: "config", mirror: state.mirror });
      sendVocab();
      pump();
    };
    ws.onmessage = (event) => {
      if (typeof event.data !== "string") return;
      let message;
      try {
        message = JSON.parse(event.data);
      } catch (err) {
        return;
      }
      onMessage(message);
    };
    ws.onclose = (event) => {
      if (state.ws !== ws) return;
      state.ws = null;
      state.inFlight = false;
      const reasons = {
        1008: "this page's address is not allowed by the server",
        1009: "a frame was too large for the server",
        1013: "the server is busy",
      };
      scheduleReconnect(reasons[event.code] || event.reason || "");
    };
  }

  function scheduleReconnect(reason) {
    const base = Math.min(RECONNECT_MAX_MS, RECONNECT_MIN_MS * 2 ** state.attempts);
    const delay = Math.round(base * (0.8 + Math.random() * 0.4));
    state.attempts += 1;
    const why = reason ? ` (${reason})` : "";
    setStatus(`Disconnected${why}; reconnecting in ${Math.max(1, Math.round(delay / 1000))} s…`, "bad");
    state.reconnectTimer = setTimeout(connect, delay);
  }

  function command(message) {
    const ws = state.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(message));
    state.commandsOut += 1;
    return true;
  }

  function onMessage(message) {
    switch (message.type) {
      case "prediction":
        frameAnswered(message);
        showPrediction(message);
        if (state.commandsOut === 0) showSpelling(message.spelling);
        break;
      case "skipped":
        frameAnswered(message);
        break;
      case "state":
        state.commandsOut = Math.max(0, state.commandsOut - 1);
        showSpelling(message.spelling);
        break;
      case "error":
        if (message.frame !== undefined) frameAnswered(message);
        else state.commandsOut = Math.max(0, state.commandsOut - 1);
        notify(`Server: ${message.error}`);
        break;
      default:
        break;
    }
  }

  // ------------------------------------------------------------------ frames

  function frameAnswered(message) {
    const now = performance.now();
    if (state.inFlight) {
      state.rtts.push(now - state.sentAt);
      if (state.rtts.length > 30) state.rtts.shift();
    }
    if (message.type === "prediction") {
      state.answerTimes.push(now);
      if (message.timings_ms && message.timings_ms.total !== undefined) {
        state.serverTimes.push(message.timings_ms.total);
        if (state.serverTimes.length > 30) state.serverTimes.shift();
      }
    }
    state.inFlight = false;
    pump();
  }

  function pump() {
    const ws = state.ws;
    if (!state.cameraOn || !state.frameReady || state.inFlight || !ws || ws.readyState !== WebSocket.OPEN) return;
    const vw = ui.video.videoWidth;
    const vh = ui.video.videoHeight;
    if (!vw || !vh) return;
    const scale = Math.min(1, MAX_W / vw, MAX_H / vh);
    const w = Math.round(vw * scale);
    const h = Math.round(vh * scale);
    if (offscreen.width !== w || offscreen.height !== h) {
      offscreen.width = w;
      offscreen.height = h;
    }
    offscreenCtx.drawImage(ui.video, 0, 0, w, h);
    state.frameReady = false;
    state.inFlight = true;
    state.sentAt = performance.now();
    offscreen.toBlob((blob) => {
      const current = state.ws;
      if (!blob || !current || current.readyState !== WebSocket.OPEN) {
        state.inFlight = false;
        return;
      }
      current.send(blob);
    }, "image/jpeg", JPEG_QUALITY);
  }

  function watchFrames() {
    // A new camera frame makes a send possible; without requestVideoFrameCallback, animation
    // frames stand in (the server may then see a frame twice, which is harmless).
    const video = ui.video;
    if (typeof video.requestVideoFrameCallback === "function") {
      const onFrame = () => {
        state.frameReady = true;
        pump();
        video.requestVideoFrameCallback(onFrame);
      };
      video.requestVideoFrameCallback(onFrame);
    } else {
      const onTick = () => {
        state.frameReady = true;
        pump();
        window.requestAnimationFrame(onTick);
      };
      window.requestAnimationFrame(onTick);
    }
    setInterval(() => {
      if (state.inFlight && performance.now() - state.sentAt > LOST_FRAME_MS) {
        state.inFlight = false;
        pump();
      }
    }, 1000);
  }

  // ------------------------------------------------------------------ showing answers

  function showPrediction(message) {
    const letter = message.letter;
    const none = !letter || letter === "nothing";
    if (letter !== state.shownLetter) {
      state.shownLetter = letter;
      ui.letter.textContent = SHOWN[letter] || letter;
      ui.letter.classList.toggle("none", none);
      ui.letter.setAttribute("aria-label", none ? "no sign" : letter);
    }
    const percent = none ? 0 : Math.round((message.confidence || 0) * 100);
    ui.confidenceBar.style.width = `${percent}%`;
    ui.confidence.setAttribute("aria-valuenow", String(percent));
    ui.top.replaceChildren(...(none ? [] : message.top || []).map((entry) => {
      const item = document.createElement("li");
      item.textContent = `${SHOWN[entry.label] || entry.label} ${Math.round(entry.score * 100)}%`;
      return item;
    }));
    drawHand(message.hand);
  }

  function drawHand(hand) {
    const canvas = ui.overlay;
    const w = ui.video.videoWidth || 640;
    const h = ui.video.videoHeight || 480;
    if (canvas.width !== w || canvas.height !== h) {
      canvas.width = w;
      canvas.height = h;
    }
    overlayCtx.clearRect(0, 0, w, h);
    if (!hand || !Array.isArray(hand.landmarks)) return;
    const points = hand.landmarks.map((p) => [p[0] * w, p[1] * h]);
    overlayCtx.lineWidth = Math.max(2, w / 240);
    overlayCtx.strokeStyle = "rgba(255, 255, 255, 0.85)";
    overlayCtx.beginPath();
    for (const [a, b] of BONES) {
      if (!points[a] || !points[b]) continue;
      overlayCtx.moveTo(points[a][0], points[a][1]);
      overlayCtx.lineTo(points[b][0], points[b][1]);
    }
    overlayCtx.stroke();
    overlayCtx.fillStyle = "#0b5fff";
    const r = Math.max(3, w / 160);
    for (const [x, y] of points) {
      overlayCtx.beginPath();
      overlayCtx.arc(x, y, r, 0, 2 * Math.PI);
      overlayCtx.fill();
    }
  }

  function showSpelling(spelling) {
    if (!spelling) return;
    setText(spelling.text || "");
    const letters = spelling.word && Array.isArray(spelling.word.letters) ? spelling.word.letters.join("") : "";
    if (ui.word.textContent !== letters) ui.word.textContent = letters;
    showChoice(spelling.choice || null);
    const pending = spelling.pending ? SHOWN[spelling.pending] || spelling.pending : "";
    if (ui.pending.textContent !== pending) ui.pending.textContent = pending;
    ui.progressBar.style.width = `${Math.round((spelling.progress || 0) * 100)}%`;
  }

  function showChoice(choice) {
    const key = choice ? JSON.stringify(choice) : "";
    if (key === (state.choice ? JSON.stringify(state.choice) : "")) return;
    state.choice = choice;
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
        button.addEventListener("click", () => pick(option));
        items.push(button);
      }
    }
    ui.choices.replaceChildren(...items);
    ui.choices.hidden = items.length === 0;
  }

  function pick(option) {
    if (!command({ type: "pick", option })) notify("Not connected: the word can be changed once the server is back.");
  }

  function revert() {
    const choice = state.choice;
    if (!choice) return;
    // Back to the letters as signed; pressed again, back to the word the lexicon chose.
    pick(choice.chosen === choice.signed ? choice.options[0] : choice.signed);
  }

  function pickCandidate(n) {
    const choice = state.choice;
    if (!choice) return;
    const candidates = choice.options.filter((o) => o !== choice.signed && o !== choice.chosen);
    if (candidates[n - 1]) pick(candidates[n - 1]);
  }

  function sendVocab() {
    const words = state.vocab.split(/[\s,;]+/).map((w) => w.trim()).filter((w) => w);
    if (words.length) command({ type: "vocab", words });
  }

  function addVocab() {
    state.vocab = ui.vocab.value;
    save(STORE_VOCAB, state.vocab);
    sendVocab();
    notify("Your words are used from the next word on.");
  }

  function setText(text) {
    if (text === state.text && ui.text.textContent === text) return;
    state.text = text;
    ui.text.textContent = text;
    save(STORE_TEXT, text);
  }

  function median(values) {
    if (!values.length) return null;
    const sorted = [...values].sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)];
  }

  function showStats() {
    const now = performance.now();
    while (state.answerTimes.length && now - state.answerTimes[0] > 2000) state.answerTimes.shift();
    ui.fps.textContent = state.answerTimes.length ? (state.answerTimes.length / 2).toFixed(1) : "–";
    const rtt = median(state.rtts);
    const server = median(state.serverTimes);
    ui.latency.textContent = rtt === null ? "–" : String(Math.round(rtt));
    ui.serverTime.textContent = server === null ? "–" : String(Math.round(server));
  }

  let noticeTimer = null;
  function notify(message) {
    ui.notice.textContent = message;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => { ui.notice.textContent = ""; }, 4000);
  }

  // ------------------------------------------------------------------ editing and output

  // Edits are the server's: the page sends the command and shows the state it answers. Only
  // while disconnected does the page delete or clear in its own copy, given back on reconnect.
  function deleteLast() {
    if (!command({ type: "backspace" }) && state.text) setText(Array.from(state.text).slice(0, -1).join(""));
  }

  function addSpace() {
    if (!command({ type: "space" })) notify("Not connected: a space can be added once the server is back.");
  }

  function clearText() {
    if (!command({ type: "clear" })) setText("");
    notify("Text cleared");
  }

  function speak() {
    const text = state.text.trim();
    if (!("speechSynthesis" in window)) {
      notify("This browser cannot speak text.");
      return;
    }
    if (!text) {
      notify("Nothing to speak yet.");
      return;
    }
    window.speechSynthesis.cancel();
    const utterance = new SpeechSynthesisUtterance(text.toLowerCase());
    utterance.lang = "en-US";
    window.speechSynthesis.speak(utterance);
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

  async function copy() {
    const text = state.text;
    if (!text) {
      notify("Nothing to copy yet.");
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
    notify(ok ? "Copied to the clipboard." : "Could not copy: select the text and copy it by hand.");
  }

  function setMirror(on) {
    state.mirror = on;
    ui.mirror.checked = on;
    save(STORE_MIRROR, String(on));
    command({ type: "config", mirror: on });
  }

  // ------------------------------------------------------------------ camera

  function cameraError(err) {
    const name = (err && err.name) || "Error";
    const origin = window.location.origin;
    if (name === "NotAllowedError" || name === "PermissionDeniedError" || name === "SecurityError") {
      return "Camera access was refused. Allow the camera for this site (the camera icon in the address bar " +
        "or the site settings), then press Start camera.";
    }
    if (name === "NotFoundError" || name === "DevicesNotFoundError" || name === "OverconstrainedError") {
      return "No camera was found. Connect a camera (or close the app that hides it), then press Start camera.";
    }
    if (name === "NotReadableError" || name === "TrackStartError" || name === "AbortError") {
      return "The camera could not be started: another application may be using it. Close it, then press " +
        "Start camera.";
    }
    return `The camera could not be started (${name}: ${(err && err.message) || "no details"}) at ${origin}.`;
  }

  function insecureMessage() {
    const port = window.location.port ? `:${window.location.port}` : "";
    return `Browsers allow the camera only on secure pages, and ${window.location.origin} is not one. ` +
      `On the computer running the server, open http://localhost${port}/ instead; from another device, ` +
      "start the server with HTTPS (fingerspell serve --tls-cert cert.pem --tls-key key.pem) and open its https:// address.";
  }

  function showCameraMessage(message) {
    ui.cameraMessage.textContent = message;
    ui.cameraMessage.hidden = !message;
  }

  async function startCamera() {
    showCameraMessage("");
    ui.startCamera.hidden = true;
    if (!window.isSecureContext || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      showCameraMessage(insecureMessage());
      return;
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        audio: false,
        video: { width: { ideal: MAX_W }, height: { ideal: MAX_H }, facingMode: "user" },
      });
    } catch (err) {
      showCameraMessage(cameraError(err));
      ui.startCamera.hidden = false;
      return;
    }
    ui.video.srcObject = stream;
    try {
      await ui.video.play();
    } catch (err) {
      /* autoplay of a muted video is allowed; play() may still reject if interrupted */
    }
    state.cameraOn = true;
    const track = stream.getVideoTracks()[0];
    if (track) {
      track.addEventListener("ended", () => {
        state.cameraOn = false;
        showCameraMessage("The camera stopped. Press Start camera to use it again.");
        ui.startCamera.hidden = false;
      });
    }
    pump();
  }

  // ------------------------------------------------------------------ wiring

  function onKey(event) {
    if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
    const target = event.target;
    const onControl = target instanceof Element && target.closest("button, input, select, textarea, a");
    const typing = target instanceof Element && target.closest("input[type=text], textarea, [contenteditable]");
    if (typing) return;
    const key = event.key;
    if (key === "Backspace") {
      event.preventDefault();
      deleteLast();
    } else if (key === " " && !onControl) {
      event.preventDefault(); // Space on a focused button presses that button instead
      addSpace();
    } else if (key === "s" || key === "S") {
      speak();
    } else if (key === "c" || key === "C") {
      copy();
    } else if (key === "m" || key === "M") {
      setMirror(!state.mirror);
    } else if (key === "r" || key === "R") {
      revert();
    } else if (key === "1" || key === "2") {
      pickCandidate(Number(key));
    }
  }

  function init() {
    ui.text.textContent = state.text;
    ui.mirror.checked = state.mirror;
    ui.vocab.value = state.vocab;
    ui.addVocab.addEventListener("click", addVocab);
    if (!("speechSynthesis" in window)) {
      ui.speak.disabled = true;
      ui.speak.title = "This browser cannot speak text";
    }
    ui.speak.addEventListener("click", speak);
    ui.copy.addEventListener("click", copy);
    ui.del.addEventListener("click", deleteLast);
    ui.space.addEventListener("click", addSpace);
    ui.clear.addEventListener("click", clearText);
    ui.mirror.addEventListener("change", () => setMirror(ui.mirror.checked));
    ui.startCamera.addEventListener("click", startCamera);
    document.addEventListener("keydown", onKey);
    window.addEventListener("online", () => { if (!state.ws) connect(); });
    setInterval(showStats, 250);
    watchFrames();
    connect();
    startCamera();
  }

  init();
})();
