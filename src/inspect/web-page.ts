// The one page `zd inspect --web` serves: the two statecharts as inline SVG (generated from the
// machines at startup) and a small script that lights up the live states from `/events`. Pure.
//
// In the worker chart, each state a live worker is in gets the class `zd-active`, a `data-workers`
// attribute listing those workers' ids (space-separated), and a numbered marker per worker; the
// compound states around it get `zd-within`. The rollout chart's current state gets `zd-active`
// and `data-generation`.
import { REPLAY_CLIENT, REPLAY_HTML, REPLAY_STYLE } from './replay-page.ts';

export interface PageParts {
  workerSvg: string;
  rolloutSvg: string;
  /** The CSP nonce that lets the page's own script and style run, and nothing else. */
  nonce: string;
  /** `zd inspect --replay --web`: a scrubbable timeline instead of the live stream (replay-page.ts). */
  replay?: boolean;
}

/** Graphviz's SVG as an inline element: no XML prolog, no doctype, a page-unique graph id. */
export function inlineSvg(svg: string, machine: string): string {
  const start = svg.indexOf('<svg');
  if (start === -1) throw new Error(`diagram: no <svg> element in the ${machine} diagram`);
  return svg.slice(start).replace('id="graph0"', `id="${machine}-graph"`).trim();
}

export function renderPage(parts: PageParts): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>zd inspect</title>
<link rel="icon" href="data:,">
<style nonce="${parts.nonce}">${STYLE}${parts.replay ? REPLAY_STYLE : ''}</style>
</head>
<body${parts.replay ? ' data-mode="replay"' : ''}>
<header>
  <h1>zd inspect <span id="instance"></span></h1>
  <p id="summary">connecting…</p>
  <p id="banner" hidden></p>
</header>
${parts.replay ? REPLAY_HTML : ''}
<main>
  <section id="worker-machine" class="chart">
    <h2>worker machine</h2>
    ${inlineSvg(parts.workerSvg, 'worker')}
  </section>
  <aside>
    <section id="rollout-machine" class="chart">
      <h2>rollout machine</h2>
      <p id="rollout-progress"></p>
      ${inlineSvg(parts.rolloutSvg, 'rollout')}
    </section>
    <section>
      <h2>workers</h2>
      <table id="workers"><thead><tr><th></th><th>id</th><th>pid</th><th>gen</th><th>slot</th><th>state</th></tr></thead><tbody></tbody></table>
    </section>
    <section>
      <h2>events</h2>
      <ol id="events" reversed></ol>
    </section>
  </aside>
</main>
<script nonce="${parts.nonce}">${CLIENT}</script>
${parts.replay ? `<script nonce="${parts.nonce}">${REPLAY_CLIENT}</script>` : ''}
</body>
</html>
`;
}

const STYLE = `
:root { font: 14px/1.4 system-ui, sans-serif; color: #222; background: #fafafa; }
body { margin: 0 16px 16px; }
header h1 { font-size: 18px; margin: 12px 0 2px; }
header p { margin: 2px 0; }
#instance { font-weight: normal; color: #555; }
#banner { background: #c62828; color: #fff; padding: 6px 10px; border-radius: 4px; }
main { display: grid; grid-template-columns: minmax(0, 5fr) minmax(0, 3fr); gap: 16px; align-items: start; }
section { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 8px 12px; margin-bottom: 16px; }
h2 { font-size: 14px; margin: 0 0 6px; color: #555; text-transform: uppercase; letter-spacing: .04em; }
.chart svg { width: 100%; height: auto; display: block; }
g.node.zd-active > path, g.node.zd-active > polygon, g.node.zd-active > ellipse { fill: #ffd54f; stroke: #b26a00; stroke-width: 2px; }
g.cluster.zd-within > path, g.cluster.zd-within > polygon { fill: #fff4cc; }
.zd-marker text { font: bold 9px system-ui, sans-serif; fill: #fff; }
#rollout-progress { margin: 0 0 4px; font-weight: 600; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 2px 8px 2px 0; }
th { color: #777; font-weight: normal; }
.swatch { display: inline-block; width: 12px; height: 12px; border-radius: 6px; vertical-align: middle; }
#events { margin: 0; padding-left: 0; list-style: none; font: 12px/1.5 ui-monospace, monospace; }
#events .warn, #events .error, #events .fatal { color: #b71c1c; }
#events time { color: #777; margin-right: 6px; }
#events code { margin-right: 6px; }
`;

// Plain browser JavaScript, kept as text: a bundler's helpers must not leak into the page. It only
// ever sets text and attributes, never HTML, so nothing from the stream can become markup.
const CLIENT = `
'use strict';
(function () {
  var SVG = 'http://www.w3.org/2000/svg';
  var COLORS = ['#1565c0', '#2e7d32', '#6a1b9a', '#c62828', '#00838f', '#ef6c00', '#4e342e', '#ad1457'];
  var color = function (id) { return COLORS[id % COLORS.length]; };
  var byId = function (id) { return document.getElementById(id); };
  var text = function (el, value) { el.textContent = value; return el; };
  var make = function (tag, props) {
    var el = document.createElement(tag);
    for (var key in props || {}) el.setAttribute(key, props[key]);
    return el;
  };
  var pad = function (n, w) { n = String(n); while (n.length < w) n = '0' + n; return n; };
  var clock = function (at) {
    var d = new Date(at);
    return pad(d.getHours(), 2) + ':' + pad(d.getMinutes(), 2) + ':' + pad(d.getSeconds(), 2) + '.' + pad(d.getMilliseconds(), 3);
  };

  function reset(chart) {
    chart.querySelectorAll('.zd-active, .zd-within').forEach(function (el) {
      el.classList.remove('zd-active', 'zd-within');
      el.removeAttribute('data-workers');
      el.removeAttribute('data-generation');
    });
    chart.querySelectorAll('.zd-marker').forEach(function (el) { el.remove(); });
  }

  /** Lights the state and marks the compound states around it; the element, or null if unknown. */
  function light(machine, state) {
    var parts = state.split('.');
    for (var i = 1; i < parts.length; i++) {
      var outer = byId(machine + '.' + parts.slice(0, i).join('.'));
      if (outer) outer.classList.add('zd-within');
    }
    var el = byId(machine + '.' + state);
    if (el) el.classList.add('zd-active');
    return el;
  }

  function markers(el, workers) {
    var box = el.getBBox();
    workers.forEach(function (w, i) {
      var g = document.createElementNS(SVG, 'g');
      g.setAttribute('class', 'zd-marker');
      g.setAttribute('data-worker', String(w.id));
      var cx = box.x + box.width - 8 - i * 18;
      var circle = document.createElementNS(SVG, 'circle');
      circle.setAttribute('cx', String(cx));
      circle.setAttribute('cy', String(box.y));
      circle.setAttribute('r', '8');
      circle.setAttribute('fill', color(w.id));
      circle.setAttribute('stroke', '#fff');
      var label = document.createElementNS(SVG, 'text');
      label.setAttribute('x', String(cx));
      label.setAttribute('y', String(box.y + 3));
      label.setAttribute('text-anchor', 'middle');
      label.textContent = String(w.id);
      var title = document.createElementNS(SVG, 'title');
      title.textContent = 'worker ' + w.id + ' (pid ' + w.pid + '): ' + w.state;
      g.appendChild(title);
      g.appendChild(circle);
      g.appendChild(label);
      el.appendChild(g);
    });
  }

  function render(view) {
    var status = view.status;
    if (view.hello) text(byId('instance'), "'" + view.hello.name + "' · pid " + view.hello.pid + ' · ' + view.hello.app);
    if (!status) return;
    var serving = (status.releases || []).filter(function (r) { return r.generation === status.serving; })[0];
    text(byId('summary'), status.phase + ' · generation ' + status.generation + ' · ' + status.ready + '/' + status.desired + ' ready' + (serving ? ' · release ' + serving.cwd : '') + (view.at ? ' · ' + clock(view.at) : ''));

    var workerChart = byId('worker-machine');
    reset(workerChart);
    var at = new Map();
    status.workers.forEach(function (w) {
      var list = at.get(w.state) || [];
      list.push(w);
      at.set(w.state, list);
    });
    at.forEach(function (workers, state) {
      var el = light('worker', state);
      if (!el) return;
      el.setAttribute('data-workers', workers.map(function (w) { return w.id; }).join(' '));
      markers(el, workers);
    });

    var rollout = view.rollout;
    var rolloutChart = byId('rollout-machine');
    reset(rolloutChart);
    var node = light('rollout', rollout.state);
    if (node && rollout.generation !== null) node.setAttribute('data-generation', String(rollout.generation));
    var about = [rollout.generation === null ? 'no rollout yet' : 'generation ' + rollout.generation + ': ' + rollout.state];
    if (rollout.replaced !== null && rollout.total !== null) about.push(rollout.replaced + ' of ' + rollout.total + ' replaced');
    if (rollout.bootingSlots.length) about.push('booting slot ' + rollout.bootingSlots.join(', '));
    if (rollout.reason) about.push(rollout.reason);
    if (status.reloadQueued) about.push('a reload is queued');
    if (status.rollout && status.rollout.canary) about.push('canary on slot ' + status.rollout.canary.slot + ': ' + status.rollout.canary.state + ' (window ' + status.rollout.canary.windowMs + 'ms)');
    var v = status.canaryVerdict;
    if (v) {
      var fig = function (g) { return (g.errorRate * 100).toFixed(1) + '% failed, p99 ≤ ' + (g.p99Ms === null ? '-' : g.p99Ms) + 'ms, ' + g.requests + ' req'; };
      about.push('last canary (generation ' + v.generation + '): ' + v.outcome + ' — new ' + fig(v.canary) + '; old ' + fig(v.baseline));
    }
    text(byId('rollout-progress'), about.join(' · '));

    var body = byId('workers').tBodies[0];
    body.replaceChildren.apply(body, status.workers.map(function (w) {
      var row = make('tr', { 'data-worker': String(w.id) });
      var swatch = make('span', { class: 'swatch' });
      swatch.style.background = color(w.id);
      row.appendChild(make('td')).appendChild(swatch);
      [w.id, w.pid === null ? '-' : w.pid, w.generation, w.slot, w.state].forEach(function (v) {
        row.appendChild(text(make('td'), String(v)));
      });
      return row;
    }));

    var list = byId('events');
    list.replaceChildren.apply(list, view.recent.slice().reverse().map(function (e) {
      var item = make('li', { class: e.level });
      item.appendChild(text(make('time'), clock(e.at)));
      item.appendChild(text(make('code'), e.code));
      item.appendChild(document.createTextNode(e.msg));
      return item;
    }));
  }

  var banner = function (message) { var b = byId('banner'); text(b, message); b.hidden = false; };
  // A replay's page draws the views its timeline asks for (replay-page.ts): no live stream.
  if (document.body.getAttribute('data-mode') === 'replay') {
    window.zdRender = render;
    window.zdBanner = banner;
    return;
  }
  var source = new EventSource('/events');
  source.addEventListener('view', function (e) { byId('banner').hidden = true; render(JSON.parse(e.data)); });
  source.addEventListener('end', function (e) { source.close(); banner(JSON.parse(e.data).message); });
  source.onerror = function () {
    if (source.readyState === EventSource.CLOSED) banner('disconnected from zd inspect');
    else banner('reconnecting to zd inspect…');
  };
})();
`;
