// The camera: getUserMedia, a call for each new video frame, and frames encoded as JPEG: the
// whole frame, or, while the server follows a hand, the part of the frame around it.

export const MAX_W = 640; // the whole frame is sent at most this size
export const MAX_H = 480;
const CAMERA_W = 1280; // asked of the camera: a hand at arm's length is ~150 px of a 640x480 frame
const CAMERA_H = 720;
const JPEG_QUALITY = 0.8;
const CROP_MARGIN = 2.2; // the crop's side, in hand sizes: room for the hand to move between frames
const CROP_MIN = 160; // camera pixels: a crop smaller than this holds too little around the hand
const CROP_MAX_SENT = 512; // a larger crop is sent scaled down to this side
const CROP_MAX_SHARE = 0.8; // of the frame's short side: a crop nearly as large buys nothing over the frame

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
    video: { width: { ideal: CAMERA_W }, height: { ideal: CAMERA_H }, facingMode: "user" },
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
   * The whole frame, scaled down to fit MAX_W x MAX_H, ``{image, region: null}``. The pixels are
   * taken now; ``image`` is a promise of the JPEG blob (null if the browser could not encode it).
   */
  wholeFrame() {
    const vw = this.video.videoWidth;
    const vh = this.video.videoHeight;
    const scale = Math.min(1, MAX_W / vw, MAX_H / vh);
    return { image: this.encode(0, 0, vw, vh, Math.round(vw * scale), Math.round(vh * scale)), region: null };
  }

  /**
   * A square around the hand at the camera's resolution (at most CROP_MAX_SENT px sent) and its
   * place in the frame, ``{image, region}``; null where the whole frame would do as well (the
   * crop would be nearly as large as the frame). ``landmarks``: the hand's points normalised
   * to the frame, as the server's last answer gave them.
   */
  handCrop(landmarks) {
    const vw = this.video.videoWidth;
    const vh = this.video.videoHeight;
    const xs = landmarks.map((p) => p[0] * vw);
    const ys = landmarks.map((p) => p[1] * vh);
    const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
    const side = Math.round(Math.max(CROP_MIN, (x1 - x0) * CROP_MARGIN, (y1 - y0) * CROP_MARGIN));
    if (!Number.isFinite(side) || side > CROP_MAX_SHARE * Math.min(vw, vh)) return null;
    const clamp = (v, hi) => Math.round(Math.min(Math.max(v, 0), hi));
    const x = clamp((x0 + x1 - side) / 2, vw - side);
    const y = clamp((y0 + y1 - side) / 2, vh - side);
    const sent = Math.min(side, CROP_MAX_SENT);
    return {
      image: this.encode(x, y, side, side, sent, sent),
      region: { type: "region", x, y, w: side, h: side, frame_w: vw, frame_h: vh },
    };
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
