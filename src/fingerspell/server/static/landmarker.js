// On-device mode: MediaPipe's hand landmarker runs here, on the live video, from the files this
// page's own server serves (/health's on_device: the ES module, the wasm folder, the .task the
// server finds hands with). No image leaves the page: each frame's hand (or none) is sent as a
// hand message in the landmark records' terms (docs/protocol.md).
//
// The GPU delegate is tried first and the CPU one where it cannot start, or where it turns out
// slower (software WebGL in a headless browser takes ~750 ms a frame against ~35 ms on the CPU).
// detectForVideo is called only for a new video frame, with strictly increasing whole-millisecond
// timestamps: MediaPipe refuses a timestamp that does not increase ("Packet timestamp mismatch").

const SLOW_GPU_MS = 150; // a GPU delegate slower than this at the median gives way to the CPU
const GPU_TRIAL = 5; // frames timed before that is judged
const DIGITS = 1e5; // landmarks are sent to 5 decimals: a hundredth of a pixel of a 1280 px frame

/** Why this browser cannot find hands itself (null where it can). */
export function deviceProblem(info) {
  if (typeof WebAssembly !== "object") return "this browser has no WebAssembly";
  if (!info || !info.available) return (info && info.why) || "the server offers no on-device hand finding";
  return null;
}

/**
 * The hand landmarker, loaded: ``find(video)`` gives ``{hand, t_ms}`` for the video's current
 * frame (``hand``: a landmark record's hand object, or null). Rejects where it cannot load.
 *
 * ``info``: /health's on_device; ``delegate``: "GPU" (falls back to "CPU") or "CPU".
 */
export async function loadLandmarker(info, delegate = "GPU") {
  const vision = await import(info.module);
  const fileset = await vision.FilesetResolver.forVisionTasks(info.wasm);
  const create = (which) => vision.HandLandmarker.createFromOptions(fileset, {
    baseOptions: { modelAssetPath: info.model, delegate: which },
    runningMode: "VIDEO",
    numHands: 1,
    ...(info.options || {}),
  });
  let used = delegate;
  let landmarker;
  try {
    landmarker = await create(used);
  } catch (err) {
    if (used === "CPU") throw err;
    used = "CPU";
    landmarker = await create(used);
  }
  let last = -1;
  const trial = [];
  const times = [];

  async function judgeGpu(ms) {
    trial.push(ms);
    if (trial.length < GPU_TRIAL) return;
    const median = [...trial].sort((a, b) => a - b)[Math.floor(trial.length / 2)];
    if (median <= SLOW_GPU_MS) {
      trial.length = 0;
      used = "GPU (kept)";
      return;
    }
    used = "CPU";
    const gpu = landmarker;
    landmarker = await create("CPU");
    gpu.close();
  }

  return {
    get delegate() {
      return used.split(" ")[0];
    },
    /** Milliseconds the last detections took, newest last (at most 30). */
    times,
    find(video) {
      const t = Math.max(last + 1, Math.round(performance.now()));
      last = t;
      const started = performance.now();
      const result = landmarker.detectForVideo(video, t);
      const ms = performance.now() - started;
      times.push(ms);
      if (times.length > 30) times.shift();
      if (used === "GPU") judgeGpu(ms).catch(() => { used = "GPU (kept)"; }); // no CPU landmarker: keep the GPU's
      const points = result.landmarks && result.landmarks[0];
      if (!points || points.length !== 21) return { hand: null, t_ms: t };
      const side = result.handedness && result.handedness[0] && result.handedness[0][0];
      const round = (v) => Math.round(v * DIGITS) / DIGITS;
      return {
        t_ms: t,
        hand: {
          landmarks: points.map((p) => [round(p.x), round(p.y), round(p.z)]),
          handedness: side && side.categoryName === "Left" ? "Left" : "Right",
          score: side ? Math.min(1, Math.max(0, round(side.score))) : 1,
          image_size: [video.videoWidth, video.videoHeight],
        },
      };
    },
  };
}
