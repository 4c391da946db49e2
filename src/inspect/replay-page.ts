// What `zd inspect --replay FILE --web` adds to the inspector's page (web-page.ts): a timeline of
// the workers and rollouts over the journal's steps, a range input to scrub it, previous/next
// buttons (and the arrow keys), a time to jump to, and a button per rollout. The charts, the
// worker table and the events are the live page's, drawn by its own render() for the step chosen.
//
// In the timeline, each rollout is a `rect.zd-rollout` with `data-outcome` (running, done,
// aborted), `data-generation`, `data-from` and `data-to` (steps); each worker's stretch in one
// state a `rect.zd-lane` with `data-worker` and `data-state`; each warning or error a
// `line.zd-mark` with `data-code` and `data-step`; the body carries `data-step` once drawn.

export const REPLAY_HTML = `<section id="replay">
  <h2>replay <span id="replay-file"></span></h2>
  <svg id="replay-timeline" xmlns="http://www.w3.org/2000/svg" preserveAspectRatio="none" viewBox="0 0 1 1" role="img" aria-label="timeline of workers and rollouts"></svg>
  <input id="replay-step" type="range" min="0" max="0" step="1" value="0" aria-label="step">
  <p class="replay-controls">
    <button id="replay-prev" type="button">◀ previous</button>
    <button id="replay-next" type="button">next ▶</button>
    <span id="replay-at"></span>
    <label>jump to <input id="replay-time" size="12" placeholder="90s, 1500 (ms)"></label>
    <button id="replay-go" type="button">go</button>
  </p>
  <p id="replay-rollouts"></p>
  <p class="replay-legend"><span class="zd-booting">booting</span> <span class="zd-listening">listening</span> <span class="zd-draining">draining</span> <span class="zd-stopping">stopping</span> · rollouts: <span class="zd-done">done</span> <span class="zd-aborted">aborted</span> <span class="zd-running">running</span> · red ticks: warnings and errors</p>
</section>
`;

export const REPLAY_STYLE = `
#replay { margin-bottom: 16px; }
#replay-timeline { width: 100%; height: 120px; display: block; background: #f4f4f4; border-radius: 4px; }
#replay-step { width: 100%; margin: 6px 0 0; }
.replay-controls { margin: 4px 0; display: flex; gap: 8px; align-items: center; flex-wrap: wrap; }
#replay-at { font-variant-numeric: tabular-nums; min-width: 24em; }
#replay-rollouts button { margin-right: 6px; }
.replay-legend span { padding: 0 6px; border-radius: 3px; color: #fff; }
.zd-booting { background: #42a5f5; } .zd-listening { background: #43a047; } .zd-draining { background: #fb8c00; }
.zd-stopping { background: #e53935; } .zd-done { background: #2e7d32; } .zd-aborted { background: #c62828; } .zd-running { background: #1565c0; }
`;

// Plain browser JavaScript, like the live page's: it only sets text and attributes.
export const REPLAY_CLIENT = `
'use strict';
(function () {
  var SVG = 'http://www.w3.org/2000/svg';
  var byId = function (id) { return document.getElementById(id); };
  var text = function (el, value) { el.textContent = value; return el; };
  var range = byId('replay-step');
  var svg = byId('replay-timeline');
  var timeline = null;
  var wanted = -1;
  var cursor = null;
  var LANE = 14;
  var TOP = 18;

  function color(state) {
    if (/^booting/.test(state)) return '#42a5f5';
    if (/^listening/.test(state)) return '#43a047';
    if (/^draining/.test(state)) return '#fb8c00';
    if (/^(stopping|killing|terminating)/.test(state)) return '#e53935';
    return '#9e9e9e';
  }
  var OUTCOME = { done: '#2e7d32', aborted: '#c62828', running: '#1565c0', ended: '#757575' };

  function shape(tag, attrs, title) {
    var el = document.createElementNS(SVG, tag);
    for (var key in attrs) el.setAttribute(key, String(attrs[key]));
    if (title) {
      var t = document.createElementNS(SVG, 'title');
      t.textContent = title;
      el.appendChild(t);
    }
    svg.appendChild(el);
    return el;
  }

  function draw(tl) {
    var height = TOP + Math.max(1, tl.workers.length) * LANE + 4;
    svg.setAttribute('viewBox', '0 0 ' + tl.count + ' ' + height);
    svg.style.height = Math.min(420, Math.max(60, height * 2)) + 'px';
    tl.rollouts.forEach(function (r) {
      shape('rect', { class: 'zd-rollout', x: r.from, y: 2, width: r.to - r.from + 1, height: 12, fill: OUTCOME[r.outcome] || '#757575',
        'data-outcome': r.outcome, 'data-generation': r.generation, 'data-from': r.from, 'data-to': r.to }, 'rollout to generation ' + r.generation + ': ' + r.outcome);
    });
    tl.workers.forEach(function (w, k) {
      w.lanes.forEach(function (l) {
        shape('rect', { class: 'zd-lane', x: l.from, y: TOP + k * LANE, width: l.to - l.from + 1, height: LANE - 3, fill: color(l.state),
          'data-worker': w.id, 'data-state': l.state }, 'worker ' + w.id + ': ' + l.state);
      });
    });
    tl.marks.forEach(function (m) {
      shape('line', { class: 'zd-mark', x1: m.i + 0.5, x2: m.i + 0.5, y1: 0, y2: height, stroke: '#b71c1c', 'stroke-width': 2,
        'vector-effect': 'non-scaling-stroke', 'data-code': m.code, 'data-step': m.i }, m.code);
    });
    cursor = shape('line', { id: 'replay-cursor', x1: 0.5, x2: 0.5, y1: 0, y2: height, stroke: '#000', 'stroke-width': 2, 'vector-effect': 'non-scaling-stroke' });
    svg.addEventListener('click', function (e) {
      var box = svg.getBoundingClientRect();
      go(Math.floor(((e.clientX - box.left) / box.width) * tl.count));
    });
    var list = byId('replay-rollouts');
    tl.rollouts.forEach(function (r) {
      var b = document.createElement('button');
      b.type = 'button';
      b.setAttribute('data-generation', String(r.generation));
      b.setAttribute('data-outcome', r.outcome);
      text(b, 'generation ' + r.generation + ': ' + r.outcome);
      b.addEventListener('click', function () { go(r.to); });
      list.appendChild(b);
    });
  }

  function go(i) {
    i = Math.max(0, Math.min(timeline.count - 1, Math.floor(Number(i)) || 0));
    wanted = i;
    range.value = String(i);
    cursor.setAttribute('x1', String(i + 0.5));
    cursor.setAttribute('x2', String(i + 0.5));
    fetch('/view?i=' + i).then(function (r) { return r.json(); }).then(function (view) {
      if (i !== wanted) return; // scrubbed on since: a later answer is wanted
      window.zdRender(view);
      var p = timeline.positions[i];
      text(byId('replay-at'), 'step ' + (i + 1) + ' of ' + timeline.count + ' · +' + (p.t / 1000).toFixed(3) + ' s · ' + p.event);
      document.body.setAttribute('data-step', String(i));
    }).catch(function () { window.zdBanner('zd inspect --replay stopped'); });
  }

  /** 90s, 2m, 1500ms or 1500 (ms): ms since start, or null. */
  function ms(value) {
    var m = /^\\s*(\\d+(?:\\.\\d+)?)\\s*(ms|s|m|h)?\\s*$/.exec(value);
    if (!m) return null;
    return Number(m[1]) * { ms: 1, s: 1000, m: 60000, h: 3600000 }[m[2] || 'ms'];
  }

  fetch('/timeline').then(function (r) { return r.json(); }).then(function (tl) {
    timeline = tl;
    text(byId('replay-file'), tl.file + (tl.from === 'snapshot' ? ' (from a snapshot: older events were not kept)' : ''));
    range.max = String(tl.count - 1);
    draw(tl);
    range.addEventListener('input', function () { go(range.value); });
    byId('replay-prev').addEventListener('click', function () { go(wanted - 1); });
    byId('replay-next').addEventListener('click', function () { go(wanted + 1); });
    var jump = function () {
      var t = ms(byId('replay-time').value);
      if (t === null) return;
      var found = 0;
      for (var k = 0; k < tl.positions.length && tl.positions[k].t <= t; k++) found = k;
      go(found);
    };
    byId('replay-go').addEventListener('click', jump);
    byId('replay-time').addEventListener('keydown', function (e) { if (e.key === 'Enter') jump(); });
    document.addEventListener('keydown', function (e) {
      var active = document.activeElement;
      if (active === range || (active && active.tagName === 'INPUT')) return;
      if (e.key === 'ArrowRight') go(wanted + 1);
      if (e.key === 'ArrowLeft') go(wanted - 1);
    });
    go(tl.start);
  }).catch(function () { window.zdBanner('could not load the timeline'); });
})();
`;
