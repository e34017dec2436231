// What the page shows of the stream: the connection status, the letter and its confidence,
// the hand drawn over the video, the speed figures and short notices.

// MediaPipe's 21 hand points: wrist, then four per finger from thumb to little finger.
export const BONES = [[0, 1], [1, 2], [2, 3], [3, 4], [0, 5], [5, 6], [6, 7], [7, 8], [5, 9], [9, 10], [10, 11],
  [11, 12], [9, 13], [13, 14], [14, 15], [15, 16], [13, 17], [0, 17], [17, 18], [18, 19], [19, 20]];
export const SHOWN = { nothing: "–", space: "␣", del: "⌫" };
const KEPT = 30; // round trips and server times the medians are taken over
const NOTICE_MS = 4000;
const STEPS_AFTER_MS = 3000; // no hand this long (or none yet): the first steps show again

const $ = (id) => document.getElementById(id);

function median(values) {
  if (!values.length) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

function keepLast(values, value) {
  values.push(value);
  if (values.length > KEPT) values.shift();
}

export class View {
  constructor() {
    this.ui = {
      status: $("status"), video: $("video"), overlay: $("overlay"), cameraMessage: $("camera-message"),
      startCamera: $("start-camera"), fps: $("fps"), latency: $("latency"), serverTime: $("server-time"),
      letter: $("letter"), confidence: $("confidence"), confidenceBar: $("confidence-bar"), top: $("top"),
      notice: $("notice"), firstSteps: $("first-steps"),
    };
    this.overlayCtx = this.ui.overlay.getContext("2d");
    this.shownLetter = null;
    this.rtts = [];
    this.serverTimes = [];
    this.answerTimes = [];
    this.noticeTimer = null;
    this.handSeenAt = null;
  }

  setStatus(message, kind) {
    this.ui.status.textContent = message;
    this.ui.status.className = `status ${kind || ""}`;
  }

  notify(message) {
    this.ui.notice.textContent = message;
    clearTimeout(this.noticeTimer);
    this.noticeTimer = setTimeout(() => { this.ui.notice.textContent = ""; }, NOTICE_MS);
  }

  /** The camera's problem in words, with the Start camera button; "" hides both. */
  showCameraMessage(message, offerRestart = false) {
    this.ui.cameraMessage.textContent = message;
    this.ui.cameraMessage.hidden = !message;
    this.ui.startCamera.hidden = !offerRestart;
  }

  /** A frame was answered: ``rtt`` ms after it was sent (null if not known). */
  frameAnswered(message, rtt) {
    if (rtt !== null) keepLast(this.rtts, rtt);
    if (message.type !== "prediction") return;
    this.answerTimes.push(performance.now());
    if (message.timings_ms && message.timings_ms.total !== undefined) keepLast(this.serverTimes, message.timings_ms.total);
  }

  showPrediction(message) {
    const { ui } = this;
    const letter = message.letter;
    const none = !letter || letter === "nothing";
    if (letter !== this.shownLetter) {
      this.shownLetter = letter;
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
    this.drawHand(message.hand);
    this.drawPath(message.path);
    this.showFirstSteps(Boolean(message.hand));
  }

  /** The first steps stand where the letter will be until a hand is seen, and after a while without one. */
  showFirstSteps(hand) {
    const now = performance.now();
    if (hand) this.handSeenAt = now;
    const show = this.handSeenAt === null || now - this.handSeenAt > STEPS_AFTER_MS;
    if (this.ui.firstSteps.hidden === show) this.ui.firstSteps.hidden = !show;
  }

  /** The hand's bones and points over the video; ``hand.landmarks`` are normalised to the frame. */
  drawHand(hand) {
    const canvas = this.ui.overlay;
    const ctx = this.overlayCtx;
    const w = this.ui.video.videoWidth || 640;
    const h = this.ui.video.videoHeight || 480;
    if (canvas.width !== w || canvas.height !== h) {
      canvas.width = w;
      canvas.height = h;
    }
    ctx.clearRect(0, 0, w, h);
    if (!hand || !Array.isArray(hand.landmarks)) return;
    const points = hand.landmarks.map((p) => [p[0] * w, p[1] * h]);
    // Sized by the frame, but no larger than a small hand (at arm's length) leaves room for.
    const xs = points.map((p) => p[0]);
    const ys = points.map((p) => p[1]);
    const span = Math.max(Math.max(...xs) - Math.min(...xs), Math.max(...ys) - Math.min(...ys));
    ctx.lineWidth = Math.max(1, Math.min(w / 240, span / 50));
    ctx.strokeStyle = "rgba(255, 255, 255, 0.85)";
    ctx.beginPath();
    for (const [a, b] of BONES) {
      if (!points[a] || !points[b]) continue;
      ctx.moveTo(points[a][0], points[a][1]);
      ctx.lineTo(points[b][0], points[b][1]);
    }
    ctx.stroke();
    ctx.fillStyle = "#0b5fff";
    const r = Math.max(1.5, Math.min(w / 160, span / 40));
    for (const [x, y] of points) {
      ctx.beginPath();
      ctx.arc(x, y, r, 0, 2 * Math.PI);
      ctx.fill();
    }
  }

  /** While a J or Z is read from motion: the fingertip's path over the last second, fading with age. */
  drawPath(path) {
    if (!Array.isArray(path) || path.length < 2) return;
    const ctx = this.overlayCtx;
    const { width: w, height: h } = this.ui.overlay;
    ctx.lineWidth = Math.max(2, w / 160);
    ctx.lineCap = "round";
    for (let i = 1; i < path.length; i += 1) {
      ctx.strokeStyle = `rgba(255, 196, 0, ${(0.25 + 0.75 * (i / path.length)).toFixed(2)})`;
      ctx.beginPath();
      ctx.moveTo(path[i - 1][0] * w, path[i - 1][1] * h);
      ctx.lineTo(path[i][0] * w, path[i][1] * h);
      ctx.stroke();
    }
  }

  /** Frames answered per second over the last 2 s, median round trip and server time. */
  showStats() {
    const { ui } = this;
    const now = performance.now();
    while (this.answerTimes.length && now - this.answerTimes[0] > 2000) this.answerTimes.shift();
    ui.fps.textContent = this.answerTimes.length ? (this.answerTimes.length / 2).toFixed(1) : "–";
    const rtt = median(this.rtts);
    const server = median(this.serverTimes);
    ui.latency.textContent = rtt === null ? "–" : String(Math.round(rtt));
    ui.serverTime.textContent = server === null ? "–" : String(Math.round(server));
  }
}
