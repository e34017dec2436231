// The frame stream: each camera frame goes to the server over a WebSocket, as an image (server
// mode) or as the hand the page found in it (on-device mode), and answers come back.
//
// One frame is in flight at a time: the next is sent when the server answers, so the server
// never works on stale frames and latency stays one round trip. A dropped socket reconnects
// with backoff. Anything that can carry frames and commands to the server can stand in for it
// behind the same small interface; the page does not know which mode carries its frames:
//
//   connect()            open the stream (and again after a drop, by itself)
//   canSend()            true when a frame may be sent now: open, and no frame in flight
//   sendFrame(frame)     server mode: frame = {image: Blob | Promise<Blob|null>, region: where the
//                        image lies in the camera frame, or null for the whole frame}; on-device
//                        mode: frame = {hand: a landmark record's hand or null, t_ms}; false if it
//                        cannot be sent
//   setMode(mode)        "server" or "device": which kind of frame follows (tells the server)
//   command(message)     a JSON command; false while disconnected
//   commandsOut()        commands sent and not yet answered (frame answers may predate them)
//   onMessage(handler)   handler(message, rttMs): each JSON answer; rttMs for a frame's answer

const LOST_FRAME_MS = 5000; // an answer this late is not coming (dropped socket): send again
const RECONNECT_MIN_MS = 500;
const RECONNECT_MAX_MS = 10000;
const CLOSE_REASONS = {
  1008: "this page's address is not allowed by the server",
  1009: "a frame was too large for the server",
  1013: "the server is busy",
};

/**
 * The WebSocket frame stream to ``url``.
 *
 * ``onStatus(message, kind)`` hears the connection's state in words; ``onOpen()`` is called
 * on each (re)connection, before any frame is sent; ``onReady()`` whenever a frame may be sent.
 */
export function frameStream(url, { onStatus, onOpen, onReady }) {
  let ws = null;
  let attempts = 0;
  let reconnectTimer = null;
  let inFlight = false;
  let sentAt = 0;
  let commandsOut = 0;
  let mode = "server";
  let handSent = null; // the hand of the last hand message, for its answer
  const handlers = [];

  const isOpen = () => ws !== null && ws.readyState === WebSocket.OPEN;

  function connect() {
    clearTimeout(reconnectTimer);
    reconnectTimer = null;
    if (ws) return;
    let socket;
    try {
      socket = new WebSocket(url);
    } catch (err) {
      scheduleReconnect("");
      return;
    }
    socket.binaryType = "arraybuffer";
    ws = socket;
    onStatus(attempts ? "Reconnecting…" : "Connecting…");
    socket.onopen = () => {
      attempts = 0;
      inFlight = false;
      commandsOut = 0;
      onStatus("Connected", "ok");
      onOpen();
      onReady();
    };
    socket.onmessage = (event) => {
      if (typeof event.data !== "string") return;
      let message;
      try {
        message = JSON.parse(event.data);
      } catch (err) {
        return;
      }
      received(message);
    };
    socket.onclose = (event) => {
      if (ws !== socket) return;
      ws = null;
      inFlight = false;
      scheduleReconnect(CLOSE_REASONS[event.code] || event.reason || "");
    };
  }

  function scheduleReconnect(reason) {
    const base = Math.min(RECONNECT_MAX_MS, RECONNECT_MIN_MS * 2 ** attempts);
    const delay = Math.round(base * (0.8 + Math.random() * 0.4));
    attempts += 1;
    const why = reason ? ` (${reason})` : "";
    onStatus(`Disconnected${why}; reconnecting in ${Math.max(1, Math.round(delay / 1000))} s…`, "bad");
    reconnectTimer = setTimeout(connect, delay);
  }

  function received(message) {
    const answersFrame = message.type === "prediction" || message.type === "skipped" ||
      (message.type === "error" && message.frame !== undefined);
    // A hand message's answer leaves out the hand (the page has it): the one sent is put back,
    // so the rest of the page reads answers the same way in both modes.
    if (message.type === "prediction" && !("hand" in message)) message.hand = handSent;
    let rtt = null;
    if (answersFrame) {
      if (inFlight) rtt = performance.now() - sentAt;
      inFlight = false;
    } else if (message.type === "state" || message.type === "error" || message.type === "profile") {
      commandsOut = Math.max(0, commandsOut - 1);
    }
    if (answersFrame) onReady(); // the next frame goes out before this answer is shown
    for (const handler of handlers) handler(message, rtt);
  }

  function command(message) {
    if (!isOpen()) return false;
    ws.send(JSON.stringify(message));
    commandsOut += 1;
    return true;
  }

  function sendFrame(frame) {
    if (!canSend()) return false;
    inFlight = true;
    sentAt = performance.now();
    if (!("image" in frame)) {
      handSent = frame.hand;
      ws.send(JSON.stringify({ type: "hand", v: 1, t_ms: frame.t_ms, hand: frame.hand }));
      return true;
    }
    const sentIn = mode;
    Promise.resolve(frame.image).then((blob) => {
      if (!blob || !isOpen() || mode !== sentIn) { // an image encoded as the page left server mode is not sent
        inFlight = false;
        if (blob) onReady();
        return;
      }
      // The region message applies to the next binary frame: sent together, nothing between.
      if (frame.region) ws.send(JSON.stringify(frame.region));
      ws.send(blob);
    });
    return true;
  }

  function canSend() {
    return isOpen() && !inFlight;
  }

  function setMode(next) {
    mode = next;
    return command({ type: "config", mode });
  }

  setInterval(() => {
    if (inFlight && performance.now() - sentAt > LOST_FRAME_MS) {
      inFlight = false;
      onReady();
    }
  }, 1000);

  return {
    connect,
    canSend,
    sendFrame,
    setMode,
    command,
    commandsOut: () => commandsOut,
    onMessage: (handler) => handlers.push(handler),
    get connected() {
      return ws !== null;
    },
  };
}
