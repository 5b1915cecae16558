// One thing at a time, for the webcam and collect pages: each frame comes with the status it was published with
// (/frame.jpg?after=N answers the JPEG of the first frame newer than N and, in its X-Edgekit-Status header, that
// frame's status). The picture is decoded first, then the picture (<img id="stream">) and the status change
// together, so what the page says is always about the frame it shows.
//   showStatus(s): draw a frame's status; onStopped(s): the source has ended (s: the latest status).
function followFrames(showStatus, onStopped) {
  const $ = (id) => document.getElementById(id);
  let after = -1;
  async function next() {
    let wait = 0;
    try {
      const r = await fetch("/frame.jpg?after=" + after, { cache: "no-store" });
      const s = JSON.parse(r.headers.get("X-Edgekit-Status") || "null");
      if (r.status === 200 && s) {
        const picture = new Image();
        picture.src = URL.createObjectURL(await r.blob());
        await picture.decode();  // ready to paint before anything on screen changes
        const old = $("stream");
        picture.id = "stream";
        picture.alt = old.alt;
        picture.dataset.frame = s.frame;
        old.replaceWith(picture);
        showStatus(s);
        if (old.src.startsWith("blob:")) URL.revokeObjectURL(old.src);
        after = Number(r.headers.get("X-Edgekit-Seq"));
      } else if (r.status === 204 && s) {
        if (!s.running) { onStopped(s); wait = 2000; }
      } else if (r.status === 401 || r.status === 403) {  // no token, or a name the server does not answer to
        const answer = await r.json().catch(() => ({}));
        $("state").textContent = answer.error || "refused (" + r.status + ")";
        wait = 5000;
      } else {
        $("state").textContent = r.status === 503 ? "busy (too many requests)" : "error " + r.status;
        wait = 1000;
      }
    } catch (e) {
      $("state").textContent = "disconnected";
      wait = 1000;
    }
    setTimeout(next, wait);
  }
  next();
}
