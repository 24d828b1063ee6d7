/* The review page: keyboard-first labelling against the REST API.
 *
 * The next item is always fetched (and its pictures decoded) ahead, so an answer shows the next
 * tile at once; the vote is sent in the background. Everything sent is in frame pixels (survey
 * tiles) or image pixels (Web photos): each SVG overlay uses those coordinates as its viewBox, so
 * a mark is drawn where it was clicked at any display size, and a click converts back exactly.
 *
 * window.bearsiteReview.timings holds, per answer given with a key, the milliseconds from the key
 * press to the next tile being painted (the browser test reads it).
 */
(() => {
  "use strict";
  const root = document.querySelector("[data-review]");
  if (!root) return;
  const $ = (sel) => root.querySelector(sel);
  const SVG = "http://www.w3.org/2000/svg";
  const OTHER_COLOURS = ["#00e5ff", "#ffd60a", "#7cff6b", "#ff9f0a", "#bf5af2"];

  const cfg = {
    queue: root.dataset.queue,
    nextUrl: root.dataset.nextUrl,
    voteUrl: root.dataset.voteUrl,
    undoUrl: root.dataset.undoUrl,
    itemsUrl: root.dataset.itemsUrl,
    csrf: root.dataset.csrf,
    survey: root.dataset.survey ? Number(root.dataset.survey) : null,
    reviewing: root.hasAttribute("data-reviewing"),
  };
  const ui = {
    stage: $("[data-stage]"), loading: $("[data-loading]"), empty: $("[data-empty]"),
    controls: $("[data-controls]"), status: $("[data-status]"), done: $("[data-done]"),
    where: $("[data-where]"),
    tileView: $("[data-tile-view]"), tileFrame: $("[data-tile-frame]"), tileImg: $("[data-tile]"),
    tileSvg: $("[data-tile-overlay]"),
    ctxView: $("[data-context-view]"), ctxFrame: $("[data-context-frame]"), ctxImg: $("[data-context]"),
    ctxSvg: $("[data-context-overlay]"),
    webView: $("[data-web-view]"), webFrame: $("[data-web-frame]"), webImg: $("[data-web]"),
    webSvg: $("[data-web-overlay]"), webCaption: $("[data-web-caption]"),
    tileControls: $("[data-tile-controls]"), webControls: $("[data-web-controls]"),
    votesPanel: $("[data-votes-panel]"), votesList: $("[data-votes-list]"),
    feedback: $("[data-feedback]"), feedbackTitle: $("[data-feedback-title]"),
    feedbackImg: $("[data-feedback-img]"), feedbackSvg: $("[data-feedback-overlay]"),
    feedbackMsg: $("[data-feedback-message]"), feedbackCard: $(".feedback-card"),
    help: $("[data-help]"), makeGold: $("[data-make-gold]"),
    contextButton: $('[data-action="context"]'),
  };

  const state = {
    current: null, // the item on screen
    ahead: [], // items fetched ahead (leased to this person)
    points: [], // [[x, y]] frame pixels, the marks on the current tile
    boxes: [], // [[x0, y0, x1, y1]] image pixels, the boxes on the current Web photo
    drawing: null, // the box being dragged
    cursor: null, // keyboard crosshair, frame pixels
    shownAt: 0,
    keyAt: null,
    done: 0,
    recent: [], // items just answered or skipped: never asked for again by this page
    pending: new Set(), // votes on their way
    fetching: null,
    feedbackOpen: false,
    history: [], // what was sent, to restore the marks after an undo
  };
  const timings = [];
  const parts = []; // per timing: when the handler had shown the next item, and when painted
  window.bearsiteReview = { timings, parts, state };

  // --- Server ---------------------------------------------------------------------------------

  async function send(url, body, { method = "POST", keepalive = false } = {}) {
    const res = await fetch(url, {
      method, credentials: "same-origin", keepalive,
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": cfg.csrf },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    if (res.status !== 204) {
      try { data = await res.json(); } catch (_) { data = null; }
    }
    return { status: res.status, ok: res.ok, data };
  }

  function explain(r) {
    if (r.data && r.data.detail) return r.data.detail;
    if (r.status === 403) return "You may not do this here (are you still logged in?).";
    return `The server answered ${r.status}.`;
  }

  function say(text, error = false) {
    ui.status.textContent = text;
    ui.status.classList.toggle("error", error);
  }

  const isWeb = (item) => item.kind === "web";

  function preload(item) {
    const urls = isWeb(item) ? [item.web_image && item.web_image.url] : [item.tile_url, item.context_url];
    item.ready = Promise.all(urls.filter(Boolean).map((url) => {
      const img = new Image();
      img.src = url;
      return img.decode().catch(() => null);
    }));
    return item;
  }

  function fetchAhead() {
    if (state.fetching) return state.fetching;
    if (state.ahead.length >= 1) return Promise.resolve();
    const held = [state.current && state.current.id, ...state.ahead.map((i) => i.id), ...state.recent.slice().reverse()];
    const exclude = [...new Set(held.filter(Boolean))].slice(0, 5);
    state.fetching = send(cfg.nextUrl, { exclude, survey: cfg.survey })
      .then((r) => {
        if (r.status === 200) state.ahead.push(preload(r.data));
        else if (r.status !== 204) say(explain(r), true);
      })
      .catch(() => say("The server cannot be reached; the next answer tries again.", true))
      .finally(() => { state.fetching = null; });
    return state.fetching;
  }

  function remember(id) {
    state.recent.push(id);
    if (state.recent.length > 3) state.recent.shift();
  }

  // --- Showing an item ------------------------------------------------------------------------

  function svgEl(name, attrs) {
    const el = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    return el;
  }

  function tileBox(item) {
    const [x0, y0, x1, y1] = item.box;
    return [x0, y0, x1 - x0, y1 - y0];
  }

  function contextBox(item) {
    const b = item.context_box;
    return b && b.length === 4 ? [b[0], b[1], b[2] - b[0], b[3] - b[1]] : null;
  }

  function measure(img) {
    if (state.keyAt === null) return;
    const t0 = state.keyAt;
    state.keyAt = null;
    const shown = performance.now();
    // Painted: decoded, then the next animation frame, then a task queued from it (tasks run
    // after the frame's paint).
    const painted = () => requestAnimationFrame(() => {
      const channel = new MessageChannel();
      channel.port1.onmessage = () => {
        const ms = performance.now() - t0;
        timings.push(ms);
        parts.push({ handler: shown - t0, painted: ms });
        root.dataset.lastTiming = ms.toFixed(1);
      };
      channel.port2.postMessage(null);
    });
    if (img && img.getAttribute("src")) img.decode().then(painted, painted);
    else painted();
  }

  function show(item) {
    state.current = item;
    state.points = [];
    state.boxes = [];
    state.drawing = null;
    state.cursor = null;
    root.dataset.itemId = String(item.id);
    ui.loading.hidden = true;
    ui.empty.hidden = true;
    ui.stage.hidden = false;
    ui.controls.hidden = false;
    const web = isWeb(item);
    ui.stage.classList.toggle("web", web);
    ui.tileView.hidden = web;
    ui.ctxView.hidden = web || !item.context_url;
    ui.webView.hidden = !web;
    ui.tileControls.hidden = web;
    ui.webControls.hidden = !web;
    let img;
    if (web) {
      const w = item.web_image;
      ui.webImg.src = w.url;
      ui.webImg.alt = `Web photo ${w.name}`;
      ui.webSvg.setAttribute("viewBox", `0 0 ${w.width} ${w.height}`);
      ui.webCaption.textContent = `Drag a box around each bear. ${w.width} × ${w.height} px` +
        (w.licence ? ` · ${w.licence}` : "") + (w.author ? ` · ${w.author}` : "");
      img = ui.webImg;
    } else {
      if (item.tile_url) ui.tileImg.src = item.tile_url; else ui.tileImg.removeAttribute("src");
      ui.tileSvg.setAttribute("viewBox", tileBox(item).join(" "));
      const cb = contextBox(item);
      if (item.context_url && cb) {
        ui.ctxImg.src = item.context_url;
        ui.ctxSvg.setAttribute("viewBox", cb.join(" "));
      }
      img = ui.tileImg;
    }
    const where = [];
    if (item.survey) where.push(item.survey.name);
    if (item.image) where.push(item.image.name);
    if (typeof item.score === "number") where.push(`model score ${item.score.toFixed(2)}`);
    ui.where.textContent = where.join(" · ");
    showVotes(item);
    if (ui.makeGold) ui.makeGold.checked = false;
    draw();
    state.shownAt = performance.now();
    measure(img);
  }

  function showVotes(item) {
    const votes = cfg.reviewing && item.votes ? item.votes : [];
    ui.votesPanel.hidden = votes.length === 0;
    ui.votesList.textContent = "";
    votes.forEach((v, i) => {
      const li = document.createElement("li");
      const what = v.answer.replace("_", " ");
      const extra = v.points && v.points.length ? ` (${v.points.length} mark${v.points.length > 1 ? "s" : ""})`
        : v.boxes && v.boxes.length ? ` (${v.boxes.length} box${v.boxes.length > 1 ? "es" : ""})`
        : v.unusable_reason ? ` (${v.unusable_reason.replace(/_/g, " ")})` : "";
      li.innerHTML = `<span style="color:${OTHER_COLOURS[i % OTHER_COLOURS.length]}">●</span> `;
      li.append(`${v.user}: ${what}${extra}`);
      ui.votesList.append(li);
    });
  }

  function showLoading() {
    ui.loading.hidden = false;
    ui.loading.textContent = "Loading…";
  }

  function showEmpty() {
    state.current = null;
    delete root.dataset.itemId;
    ui.loading.hidden = true;
    ui.stage.hidden = true;
    ui.controls.hidden = true;
    ui.votesPanel.hidden = true;
    ui.empty.hidden = false;
    root.dataset.empty = "true";
  }

  // --- Marks ----------------------------------------------------------------------------------

  function drawPoints(svg, vb, item) {
    const r = Math.max(vb[2], vb[3]) / (svg === ui.tileSvg ? 22 : 40);
    if (cfg.reviewing && item.votes) {
      item.votes.forEach((v, i) => (v.points || []).forEach(([x, y]) => {
        svg.append(svgEl("circle", { cx: x, cy: y, r: r * 1.3, class: "other", stroke: OTHER_COLOURS[i % OTHER_COLOURS.length] }));
      }));
    }
    for (const [x, y] of state.points) {
      svg.append(svgEl("circle", { cx: x, cy: y, r, class: "mark" }));
      svg.append(svgEl("circle", { cx: x, cy: y, r: r / 6, class: "mark-dot" }));
    }
    if (state.cursor && svg === ui.tileSvg) {
      const [x, y] = state.cursor;
      svg.append(svgEl("line", { x1: x - r, y1: y, x2: x + r, y2: y, class: "cursor" }));
      svg.append(svgEl("line", { x1: x, y1: y - r, x2: x, y2: y + r, class: "cursor" }));
    }
  }

  function draw() {
    const item = state.current;
    if (!item) return;
    if (isWeb(item)) {
      ui.webSvg.textContent = "";
      if (cfg.reviewing && item.votes) {
        item.votes.forEach((v, i) => (v.boxes || []).forEach(([x0, y0, x1, y1]) => {
          ui.webSvg.append(svgEl("rect", { x: x0, y: y0, width: x1 - x0, height: y1 - y0, class: "other", stroke: OTHER_COLOURS[i % OTHER_COLOURS.length] }));
        }));
      }
      const boxes = state.drawing ? [...state.boxes, state.drawing] : state.boxes;
      boxes.forEach((b, i) => {
        const [x0, y0, x1, y1] = [Math.min(b[0], b[2]), Math.min(b[1], b[3]), Math.max(b[0], b[2]), Math.max(b[1], b[3])];
        const cls = state.drawing && i === boxes.length - 1 ? "box drawing" : "box";
        ui.webSvg.append(svgEl("rect", { x: x0, y: y0, width: x1 - x0, height: y1 - y0, class: cls }));
      });
      return;
    }
    const tb = tileBox(item);
    ui.tileSvg.textContent = "";
    drawPoints(ui.tileSvg, tb, item);
    const cb = contextBox(item);
    if (cb) {
      ui.ctxSvg.textContent = "";
      ui.ctxSvg.append(svgEl("rect", { x: tb[0], y: tb[1], width: tb[2], height: tb[3], class: "outline" }));
      drawPoints(ui.ctxSvg, cb, item);
    }
  }

  function toImage(frame, vb, ev) {
    const r = frame.getBoundingClientRect();
    const x = vb[0] + ((ev.clientX - r.left) / r.width) * vb[2];
    const y = vb[1] + ((ev.clientY - r.top) / r.height) * vb[3];
    return [Math.round(x * 10) / 10, Math.round(y * 10) / 10, vb[2] / r.width];
  }

  function toggleMark(x, y, tolerance) {
    const hit = state.points.findIndex(([px, py]) => Math.hypot(px - x, py - y) <= tolerance);
    if (hit >= 0) state.points.splice(hit, 1);
    else state.points.push([x, y]);
    draw();
    say(state.points.length ? `${state.points.length} bear${state.points.length > 1 ? "s" : ""} marked. Press B when done.` : "");
  }

  function onTilePointer(frame, vbOf) {
    frame.addEventListener("pointerdown", (ev) => {
      const item = state.current;
      if (!item || isWeb(item) || state.feedbackOpen || ev.button > 0) return;
      const vb = vbOf(item);
      if (!vb) return;
      ev.preventDefault();
      const [x, y, perPx] = toImage(frame, vb, ev);
      toggleMark(x, y, 14 * perPx);
    });
  }
  onTilePointer(ui.tileFrame, tileBox);
  onTilePointer(ui.ctxFrame, contextBox);

  // Web photos: drag a box (mouse, touchpad, pen or finger: pointer events with capture).
  ui.webFrame.addEventListener("pointerdown", (ev) => {
    const item = state.current;
    if (!item || !isWeb(item) || state.feedbackOpen || ev.button > 0) return;
    ev.preventDefault();
    ui.webFrame.setPointerCapture(ev.pointerId);
    const vb = [0, 0, item.web_image.width, item.web_image.height];
    const [x, y] = toImage(ui.webFrame, vb, ev);
    state.drawing = [x, y, x, y];
    draw();
  });
  ui.webFrame.addEventListener("pointermove", (ev) => {
    if (!state.drawing) return;
    const w = state.current.web_image;
    const [x, y] = toImage(ui.webFrame, [0, 0, w.width, w.height], ev);
    state.drawing[2] = Math.min(Math.max(x, 0), w.width);
    state.drawing[3] = Math.min(Math.max(y, 0), w.height);
    draw();
  });
  const endDrag = () => {
    const b = state.drawing;
    if (!b) return;
    state.drawing = null;
    const box = [Math.min(b[0], b[2]), Math.min(b[1], b[3]), Math.max(b[0], b[2]), Math.max(b[1], b[3])];
    const w = state.current.web_image;
    const minSide = Math.max(w.width, w.height) / 100;
    if (box[2] - box[0] >= minSide && box[3] - box[1] >= minSide) {
      state.boxes.push(box);
      say(`${state.boxes.length} box${state.boxes.length > 1 ? "es" : ""}. Press A if the photo is usable.`);
    }
    draw();
  };
  ui.webFrame.addEventListener("pointerup", endDrag);
  ui.webFrame.addEventListener("pointercancel", endDrag);

  function moveCursor(dx, dy, big) {
    const item = state.current;
    if (!item || isWeb(item)) return;
    const [x0, y0, w, h] = tileBox(item);
    const step = (w / 28) * (big ? 4 : 1);
    const [cx, cy] = state.cursor || [x0 + w / 2, y0 + h / 2];
    state.cursor = [Math.min(Math.max(cx + dx * step, x0), x0 + w), Math.min(Math.max(cy + dy * step, y0), y0 + h)];
    draw();
  }

  function markAtCursor() {
    const item = state.current;
    if (!item || isWeb(item)) return;
    const [x0, y0, w, h] = tileBox(item);
    if (!state.cursor) state.cursor = [x0 + w / 2, y0 + h / 2];
    const [x, y] = state.cursor.map((v) => Math.round(v * 10) / 10);
    toggleMark(x, y, w / 40);
  }

  // --- Answers --------------------------------------------------------------------------------

  function advance() {
    const next = state.ahead.shift();
    if (next) {
      show(next);
      fetchAhead();
      return;
    }
    state.current = null;
    showLoading();
    fetchAhead().then(() => {
      const item = state.ahead.shift();
      if (item) {
        show(item);
        fetchAhead();
      } else {
        showEmpty();
      }
    });
  }

  function answer(kind, reason = "") {
    const item = state.current;
    if (!item || state.feedbackOpen) return;
    if (kind === "usable" && state.boxes.length === 0) {
      state.keyAt = null;
      say("Draw a box around each bear first (drag on the photo), then press A.", true);
      return;
    }
    const body = {
      item: item.id,
      answer: kind,
      points: kind === "bear" ? state.points.slice() : [],
      boxes: kind === "usable" ? state.boxes.slice() : [],
      unusable_reason: reason,
      duration_ms: Math.round(performance.now() - state.shownAt),
    };
    if (cfg.reviewing && ui.makeGold && ui.makeGold.checked) body.make_gold = true;
    remember(item.id);
    state.history.push({ item, body });
    if (state.history.length > 20) state.history.shift();
    const sent = send(cfg.voteUrl, body)
      .then((r) => {
        if (r.status === 201) {
          state.done += 1;
          ui.done.textContent = String(state.done);
          if (r.data.gold) showFeedback(item, body, r.data.gold);
        } else {
          say(explain(r), true);
        }
      })
      .catch(() => say("Your answer could not be sent: check the connection.", true))
      .finally(() => state.pending.delete(sent));
    state.pending.add(sent);
    say("");
    advance();
  }

  function skip() {
    const item = state.current;
    if (!item || state.feedbackOpen) return;
    remember(item.id);
    send(`${cfg.itemsUrl}${item.id}/skip/`).catch(() => null);
    say("Skipped.");
    advance();
  }

  async function undo() {
    if (state.feedbackOpen) return;
    await Promise.allSettled([...state.pending]);
    const r = await send(cfg.undoUrl);
    if (r.status !== 200) {
      say(explain(r), true);
      return;
    }
    const item = preload(r.data);
    if (state.current) state.ahead.unshift(state.current);
    while (state.ahead.length > 2) {
      const extra = state.ahead.pop();
      send(`${cfg.itemsUrl}${extra.id}/release/`).catch(() => null);
    }
    state.recent = state.recent.filter((id) => id !== item.id);
    state.done = Math.max(0, state.done - 1);
    ui.done.textContent = String(state.done);
    await item.ready;
    show(item);
    const last = [...state.history].reverse().find((h) => h.item.id === item.id);
    if (last) {
      state.points = last.body.points.slice();
      state.boxes = last.body.boxes.slice();
      draw();
    }
    say("Your last answer was taken back: answer again.");
  }

  // --- Gold feedback --------------------------------------------------------------------------

  function showFeedback(item, body, gold) {
    state.feedbackOpen = true;
    ui.feedbackCard.classList.toggle("right", gold.correct);
    ui.feedbackCard.classList.toggle("wrong", !gold.correct);
    ui.feedbackTitle.textContent = gold.correct ? "Right" : "Not quite";
    ui.feedbackMsg.textContent = gold.message;
    ui.feedbackSvg.textContent = "";
    if (isWeb(item)) {
      ui.feedbackImg.src = item.web_image.url;
      ui.feedbackSvg.setAttribute("viewBox", `0 0 ${item.web_image.width} ${item.web_image.height}`);
    } else {
      const vb = tileBox(item);
      if (item.tile_url) ui.feedbackImg.src = item.tile_url;
      ui.feedbackSvg.setAttribute("viewBox", vb.join(" "));
      const r = vb[2] / 14;
      for (const [x, y] of gold.points || []) ui.feedbackSvg.append(svgEl("circle", { cx: x, cy: y, r, class: "gold" }));
      for (const [x, y] of body.points || []) ui.feedbackSvg.append(svgEl("circle", { cx: x, cy: y, r: r / 2, class: "mark" }));
    }
    ui.feedback.hidden = false;
    root.dataset.lastFeedback = gold.message;
    ui.feedback.querySelector('[data-action="close-feedback"]').focus();
  }

  function closeFeedback() {
    state.feedbackOpen = false;
    ui.feedback.hidden = true;
    if (document.activeElement && ui.feedback.contains(document.activeElement)) document.activeElement.blur();
  }

  // --- Controls -------------------------------------------------------------------------------

  function toggleContext() {
    const large = !ui.stage.classList.contains("context-large");
    ui.stage.classList.toggle("context-large", large);
    if (ui.contextButton) ui.contextButton.setAttribute("aria-pressed", String(large));
  }

  function openHelp() {
    if (typeof ui.help.showModal === "function") ui.help.showModal();
    else ui.help.setAttribute("open", "");
  }

  root.addEventListener("click", (ev) => {
    const button = ev.target.closest("button");
    if (!button || !root.contains(button)) return;
    if (button.dataset.answer) {
      answer(button.dataset.answer, button.dataset.reason || "");
      return;
    }
    switch (button.dataset.action) {
      case "skip": skip(); break;
      case "undo": undo(); break;
      case "context": toggleContext(); break;
      case "help": openHelp(); break;
      case "clear-points": state.points = []; draw(); break;
      case "remove-box": state.boxes.pop(); draw(); break;
      case "close-feedback": closeFeedback(); break;
      default: break;
    }
  });

  const ARROWS = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };

  document.addEventListener("keydown", (e) => {
    if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey) return;
    const target = e.target instanceof Element ? e.target : null;
    if (target && target.closest("input:not([type=checkbox]), textarea, select")) return;
    if (state.feedbackOpen) {
      if (e.key === "Enter" || e.key === " " || e.key === "Escape") {
        e.preventDefault();
        closeFeedback();
      }
      return;
    }
    if (ui.help.open) return; // the dialog closes itself with Esc or its button
    // A focused button or checkbox keeps Enter and Space for itself (keyboard users tab to it).
    if (target && target.closest("button, a, input[type=checkbox]") && (e.key === "Enter" || e.key === " ")) return;
    const key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
    const item = state.current;
    const web = item && isWeb(item);
    const pressed = e.timeStamp > 0 && e.timeStamp <= performance.now() + 1 ? e.timeStamp : performance.now();
    const timed = (fn) => { if (item) state.keyAt = pressed; fn(); };
    let handled = true;
    if (key === "?") openHelp();
    else if (key === "s" || key === " ") timed(skip);
    else if (key === "Backspace") undo();
    else if (!item) handled = false;
    else if (!web && key === "b") timed(() => answer("bear"));
    else if (!web && key === "n") timed(() => answer("no_bear"));
    else if (!web && key === "u") timed(() => answer("unsure"));
    else if (!web && key === "z") toggleContext();
    else if (!web && key === "c") { state.points = []; draw(); }
    else if (!web && ARROWS[key]) moveCursor(ARROWS[key][0], ARROWS[key][1], e.shiftKey);
    else if (!web && (key === "Enter" || key === "m")) markAtCursor();
    else if (web && key === "a") timed(() => answer("usable"));
    else if (web && /^[1-9]$/.test(key)) {
      const button = ui.webControls.querySelectorAll("button.unusable")[Number(key) - 1];
      if (button) timed(() => answer("unusable", button.dataset.reason));
      else handled = false;
    } else if (web && (key === "Delete" || key === "x")) { state.boxes.pop(); draw(); }
    else if (cfg.reviewing && key === "g" && ui.makeGold) ui.makeGold.checked = !ui.makeGold.checked;
    else handled = false;
    if (handled) e.preventDefault();
  });

  // Leaving the page gives back what it held, so nobody waits for the leases to expire.
  window.addEventListener("pagehide", () => {
    for (const item of [state.current, ...state.ahead]) {
      if (item) send(`${cfg.itemsUrl}${item.id}/release/`, undefined, { keepalive: true }).catch(() => null);
    }
  });

  // --- Start ----------------------------------------------------------------------------------

  fetchAhead().then(async () => {
    const first = state.ahead.shift();
    if (!first) {
      showEmpty();
      return;
    }
    await first.ready;
    show(first);
    fetchAhead();
  });
})();
