// The camera: getUserMedia, a call for each new video frame, and frames encoded as JPEG.

export const MAX_W = 640; // the whole frame is sent at most this size
export const MAX_H = 480;
const JPEG_QUALITY = 0.8;

/** Why the camera is not there, in words that say what to do. */
export function cameraProblem(err) {
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

/** The camera message for a page the browser will not give a camera to (null where it will). */
export function insecureProblem() {
  if (window.isSecureContext && navigator.mediaDevices && navigator.mediaDevices.getUserMedia) return null;
  const port = window.location.port ? `:${window.location.port}` : "";
  return `Browsers allow the camera only on secure pages, and ${window.location.origin} is not one. ` +
    `On the computer running the server, open http://localhost${port}/ instead; from another device, ` +
    "start the server with HTTPS (fingerspell serve --tls-cert cert.pem --tls-key key.pem) and open its https:// address.";
}

/**
 * Start the camera and play it in ``video``. Rejects as getUserMedia does; ``onEnded`` is called
 * if the camera stops later (unplugged, permission withdrawn).
 */
export async function openCamera(video, onEnded) {
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: false,
    video: { width: { ideal: MAX_W }, height: { ideal: MAX_H }, facingMode: "user" },
  });
  video.srcObject = stream;
  try {
    await video.play();
  } catch (err) {
    /* autoplay of a muted video is allowed; play() may still reject if interrupted */
  }
  const track = stream.getVideoTracks()[0];
  if (track) track.addEventListener("ended", onEnded);
  return stream;
}

/**
 * Call ``onFrame`` for each new camera frame. Without requestVideoFrameCallback, animation
 * frames stand in (the server may then see a frame twice, which is harmless).
 */
export function watchFrames(video, onFrame) {
  if (typeof video.requestVideoFrameCallback === "function") {
    const tick = () => {
      onFrame();
      video.requestVideoFrameCallback(tick);
    };
    video.requestVideoFrameCallback(tick);
  } else {
    const tick = () => {
      onFrame();
      window.requestAnimationFrame(tick);
    };
    window.requestAnimationFrame(tick);
  }
}

/** Grabs the video's current frame into a canvas of its own and encodes it as JPEG. */
export class FrameEncoder {
  constructor(video) {
    this.video = video;
    this.canvas = document.createElement("canvas");
    this.ctx = this.canvas.getContext("2d");
  }

  /** True once the video has a size (its first frame came). */
  get ready() {
    return Boolean(this.video.videoWidth && this.video.videoHeight);
  }

  /**
   * The whole frame, scaled down to fit MAX_W x MAX_H. The pixels are taken now; the
   * returned promise gives the JPEG blob (null if the browser could not encode it).
   */
  wholeFrame() {
    const vw = this.video.videoWidth;
    const vh = this.video.videoHeight;
    const scale = Math.min(1, MAX_W / vw, MAX_H / vh);
    return this.encode(0, 0, vw, vh, Math.round(vw * scale), Math.round(vh * scale));
  }

  // The video's (sx, sy, sw, sh) rectangle drawn at w x h, then encoded.
  encode(sx, sy, sw, sh, w, h) {
    if (this.canvas.width !== w || this.canvas.height !== h) {
      this.canvas.width = w;
      this.canvas.height = h;
    }
    this.ctx.drawImage(this.video, sx, sy, sw, sh, 0, 0, w, h);
    return new Promise((resolve) => this.canvas.toBlob(resolve, "image/jpeg", JPEG_QUALITY));
  }
}
