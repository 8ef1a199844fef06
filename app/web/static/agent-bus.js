// The volunteer screen's shared bus: agent.js owns the socket and the call; the
// panels (caller details, pledge form, script) live in their own modules and
// listen here, so each panel can change without touching the others.
//
// Events on `bus` (CustomEvent, payload in `detail`):
//   "ready"    {me}                    the signed-in volunteer is known
//   "message"  {type, seq, at, data}   every socket message, after agent.js applied it
//   "call"     {call}                  the call on screen changed (null: no call)

export const bus = new EventTarget();

// Filled in by agent.js: who is signed in, the call on screen, and a way to send a
// command over the agent socket (resolves with the ack data, rejects with the error).
export const screen = {
  me: null,
  call: null,
  agent: null,
  command: async () => {
    throw new Error("not connected");
  },
  // Set by softphone.js when the volunteer answers on a browser softphone: asked
  // before Ready, resolves {ok, why} (a microphone heard, the line registered).
  beforeReady: null,
};

export function publish(type, detail) {
  bus.dispatchEvent(new CustomEvent(type, { detail }));
}
