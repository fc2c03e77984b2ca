// The report page's style and scripts. Charts are SVG drawn from the embedded data, so
// the file opens anywhere without a network; docs/report.md lists what each shows.
#include "report/report_page.h"

namespace unitrain::report {

const char* report_style() {
  return R"CSS(
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; background: #fff; }
h1 { font-size: 20px; margin: 0 0 8px; }
h2 { font-size: 16px; margin: 28px 0 4px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
p.note { color: #666; margin: 2px 0 10px; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; }
.chart { border: 1px solid #e4e4e4; border-radius: 4px; padding: 4px; }
.chart svg { display: block; }
.chart text { font-size: 11px; fill: #444; }
.chart text.title { font-size: 13px; font-weight: 600; fill: #222; }
.legend { display: flex; flex-wrap: wrap; gap: 12px; margin: 4px 0 10px; }
.legend span.swatch { display: inline-block; width: 14px; height: 4px; margin-right: 4px; vertical-align: middle; }
table { border-collapse: collapse; margin-top: 8px; }
th, td { border: 1px solid #ddd; padding: 3px 10px; text-align: right; }
th { background: #f4f4f4; }
td.name { text-align: left; }
.runs td { text-align: left; }
)CSS";
}

const char* report_error_hook() {
  return R"JS(
window.reportErrors = [];
window.onerror = function (message, source, line) {
  window.reportErrors.push(String(message) + ' (line ' + line + ')');
  document.body.setAttribute('data-errors', window.reportErrors.join(' | '));
};
)JS";
}

const char* report_script() {
  return R"JS(
(function () {
  'use strict';
  var runs = JSON.parse(document.getElementById('run-data').textContent);
  var root = document.getElementById('report');
  var NS = 'http://www.w3.org/2000/svg';
  var runColors = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#17becf'];
  var phases = ['data', 'forward', 'backward', 'update'];
  var phaseColors = { data: '#9ecae1', forward: '#3182bd', backward: '#fd8d3c', update: '#74c476' };
  var SMOOTHING = 0.8;   // TensorBoard's default EMA weight
  var MAX_POINTS = 3000; // per drawn line; longer series are thinned evenly
  var W = 470, H = 260, M = { l: 58, r: 14, t: 28, b: 36 };
  var expected = 0, drawn = 0;

  function svgEl(name, attrs, parent) {
    var e = document.createElementNS(NS, name);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }
  function htmlEl(tag, text, parent, cls) {
    var e = document.createElement(tag);
    if (text !== null && text !== undefined) e.textContent = text;
    if (cls) e.className = cls;
    if (parent) parent.appendChild(e);
    return e;
  }
  function section(title, note) {
    htmlEl('h2', title, root);
    if (note) htmlEl('p', note, root, 'note');
    return htmlEl('div', null, root, 'charts');
  }
  function fmt(v) {
    if (v === 0) return '0';
    var a = Math.abs(v);
    if (a >= 1e5 || a < 1e-3) return v.toExponential(1);
    return String(+v.toPrecision(4));
  }
  function ticks(lo, hi, n) {
    var span = hi - lo;
    var step = Math.pow(10, Math.floor(Math.log(span / n) / Math.LN10));
    var err = span / n / step;
    if (err >= 7.5) step *= 10; else if (err >= 3.5) step *= 5; else if (err >= 1.5) step *= 2;
    var out = [];
    for (var v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
    return out;
  }
  function finite(points) {
    return points.filter(function (p) { return isFinite(p[0]) && isFinite(p[1]); });
  }
  // TensorBoard's smoothing: an exponential moving average with its start debiased.
  function ema(points, w) {
    var out = [], last = 0, n = 0;
    points.forEach(function (p) {
      n += 1;
      last = last * w + (1 - w) * p[1];
      out.push([p[0], last / (1 - Math.pow(w, n))]);
    });
    return out;
  }
  function thin(points) {
    if (points.length <= MAX_POINTS) return points;
    var out = [], stride = points.length / MAX_POINTS;
    for (var i = 0; i < MAX_POINTS; i++) out.push(points[Math.floor(i * stride)]);
    out.push(points[points.length - 1]);
    return out;
  }
  function runColor(r) { return runColors[r % runColors.length]; }

  // The step axis every line chart shares: 0 to the last step of any run.
  var maxStep = 1;
  runs.forEach(function (run) {
    function see(points) { points.forEach(function (p) { if (p[0] > maxStep) maxStep = p[0]; }); }
    Object.keys(run.loss).forEach(function (t) { see(run.loss[t]); });
    see(run.lr); see(run.grad_norm);
    Object.keys(run.eval).forEach(function (t) {
      Object.keys(run.eval[t]).forEach(function (m) { see(run.eval[t][m]); });
    });
  });

  // Draws `body(svg)` in a new chart box; counts what was meant and what drew.
  function chart(parent, title, legend, body, height) {
    expected += 1;
    var box = htmlEl('div', null, parent, 'chart');
    try {
      var h = height || H;
      var svg = svgEl('svg', { width: W, height: h, viewBox: '0 0 ' + W + ' ' + h }, box);
      svgEl('text', { x: M.l, y: 16, 'class': 'title' }, svg).textContent = title;
      body(svg);
      if (legend && legend.length) {
        var l = htmlEl('div', null, box, 'legend');
        legend.forEach(function (item) {
          var s = htmlEl('span', null, l);
          var sw = htmlEl('span', null, s, 'swatch');
          sw.style.background = item.color;
          s.appendChild(document.createTextNode(item.name));
        });
      }
      box.setAttribute('data-drawn', 'true');
      drawn += 1;
    } catch (e) {
      window.reportErrors.push(title + ': ' + e);
      document.body.setAttribute('data-errors', window.reportErrors.join(' | '));
    }
  }

  // series: [{points: [[step, value]...], color, width, opacity, dash}];
  // hlines: [{y, label}] (chance levels).
  function lineChart(parent, title, series, hlines, legend) {
    chart(parent, title, legend, function (svg) {
      var lo = Infinity, hi = -Infinity;
      series.forEach(function (s) {
        s.points = finite(s.points);
        s.points.forEach(function (p) { if (p[1] < lo) lo = p[1]; if (p[1] > hi) hi = p[1]; });
      });
      (hlines || []).forEach(function (h) { if (h.y < lo) lo = h.y; if (h.y > hi) hi = h.y; });
      if (lo === Infinity) {
        svgEl('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle' }, svg).textContent = 'no values';
        return;
      }
      if (hi - lo < 1e-12 * Math.max(1, Math.abs(hi))) { lo -= 0.5 * Math.max(1e-3, Math.abs(lo)); hi += 0.5 * Math.max(1e-3, Math.abs(hi)); }
      var pad = 0.05 * (hi - lo); lo -= pad; hi += pad;
      var pw = W - M.l - M.r, ph = H - M.t - M.b;
      function X(s) { return M.l + pw * s / maxStep; }
      function Y(v) { return M.t + ph * (1 - (v - lo) / (hi - lo)); }
      ticks(lo, hi, 5).forEach(function (v) {
        svgEl('line', { x1: M.l, x2: M.l + pw, y1: Y(v), y2: Y(v), stroke: '#eee' }, svg);
        svgEl('text', { x: M.l - 5, y: Y(v) + 4, 'text-anchor': 'end' }, svg).textContent = fmt(v);
      });
      ticks(0, maxStep, 5).forEach(function (s) {
        svgEl('line', { x1: X(s), x2: X(s), y1: M.t, y2: M.t + ph, stroke: '#f3f3f3' }, svg);
        svgEl('text', { x: X(s), y: M.t + ph + 14, 'text-anchor': 'middle' }, svg).textContent = fmt(s);
      });
      svgEl('rect', { x: M.l, y: M.t, width: pw, height: ph, fill: 'none', stroke: '#bbb' }, svg);
      svgEl('text', { x: M.l + pw / 2, y: H - 4, 'text-anchor': 'middle' }, svg).textContent = 'step';
      (hlines || []).forEach(function (h) {
        svgEl('line', { x1: M.l, x2: M.l + pw, y1: Y(h.y), y2: Y(h.y), stroke: '#777', 'stroke-dasharray': '5,4' }, svg);
        svgEl('text', { x: M.l + pw - 4, y: Y(h.y) - 4, 'text-anchor': 'end' }, svg).textContent = h.label;
      });
      series.forEach(function (s) {
        var pts = thin(s.points);
        if (!pts.length) return;
        if (pts.length === 1) {
          svgEl('circle', { cx: X(pts[0][0]), cy: Y(pts[0][1]), r: 3, fill: s.color }, svg);
          return;
        }
        var d = pts.map(function (p, i) { return (i ? 'L' : 'M') + X(p[0]).toFixed(1) + ' ' + Y(p[1]).toFixed(1); }).join('');
        var attrs = { d: d, fill: 'none', stroke: s.color, 'stroke-width': s.width || 1.5, 'stroke-opacity': s.opacity || 1 };
        if (s.dash) attrs['stroke-dasharray'] = s.dash;
        svgEl('path', attrs, svg);
        if (s.markers) pts.forEach(function (p) { svgEl('circle', { cx: X(p[0]), cy: Y(p[1]), r: 2.5, fill: s.color }, svg); });
      });
    });
  }

  function runLegend() {
    return runs.map(function (run, r) { return { name: run.name, color: runColor(r) }; });
  }
  function union(getter) {
    var names = [];
    runs.forEach(function (run) {
      getter(run).forEach(function (n) { if (names.indexOf(n) < 0) names.push(n); });
    });
    return names;
  }
  var tasks = union(function (run) { return run.tasks; });

  // Header: the runs and their folders.
  var table = htmlEl('table', null, root, 'runs');
  var hr = htmlEl('tr', null, table);
  ['', 'run', 'experiment', 'folder', 'records left out'].forEach(function (h) { htmlEl('th', h, hr); });
  runs.forEach(function (run, r) {
    var tr = htmlEl('tr', null, table);
    var sw = htmlEl('span', null, htmlEl('td', null, tr), 'swatch');
    sw.style.cssText = 'display:inline-block;width:14px;height:14px;background:' + runColor(r);
    htmlEl('td', run.name, tr); htmlEl('td', run.experiment, tr); htmlEl('td', run.folder, tr);
    htmlEl('td', String(run.skipped), tr);
  });

  var sec = section('Training loss', 'Per task, on a shared step axis: raw values (thin) and smoothed ' +
                    '(exponential moving average, weight ' + SMOOTHING + ', thick). Each run has its colour.');
  tasks.forEach(function (task) {
    var series = [];
    runs.forEach(function (run, r) {
      var pts = finite(run.loss[task] || []);
      series.push({ points: pts, color: runColor(r), width: 1, opacity: 0.35 });
      series.push({ points: ema(pts, SMOOTHING), color: runColor(r), width: 2.2 });
    });
    lineChart(sec, 'loss: ' + task, series, [], runLegend());
  });

  sec = section('Optimisation', 'Learning rate of the first parameter group and the gradient norm ' +
                'before clipping, at each logged step.');
  [['lr', 'learning rate'], ['grad_norm', 'gradient norm']].forEach(function (k) {
    lineChart(sec, k[1], runs.map(function (run, r) {
      return { points: run[k[0]], color: runColor(r), width: 1.5 };
    }), [], runLegend());
  });

  var pairs = union(function (run) { return Object.keys(run.grad_cosine || {}); });
  if (pairs.length) {
    sec = section('Task gradients', 'Cosine similarity of each pair of tasks\u2019 gradients on the ' +
                  'shared parameters, before the combine rule (step.cosine_every); below 0 they conflict.');
    pairs.forEach(function (pair) {
      lineChart(sec, 'cosine: ' + pair.replace('|', ' / '), runs.map(function (run, r) {
        return { points: (run.grad_cosine || {})[pair] || [], color: runColor(r), width: 1.5 };
      }), [{ y: 0, label: 'conflict below' }], runLegend());
    });
  }

  sec = section('Evaluation', 'Each metric at each evaluation; the dashed line is the chance level of ' +
                'the headline metric (the first one): 1 / labels for classification, 0 for detection.');
  tasks.forEach(function (task) {
    var metrics = union(function (run) { return Object.keys(run.eval[task] || {}); });
    metrics.forEach(function (metric, i) {
      var hlines = [];
      if (i === 0) {
        for (var r = 0; r < runs.length; r++) {
          var c = runs[r].chance[task];
          if (typeof c === 'number') { hlines.push({ y: c, label: 'chance ' + fmt(c) }); break; }
        }
      }
      lineChart(sec, task + ': ' + metric, runs.map(function (run, r) {
        return { points: (run.eval[task] || {})[metric] || [], color: runColor(r), width: 1.8, markers: true };
      }), hlines, runLegend());
    });
  });

  // Bars: each run's sampled share per task; the black tick is the scheduler's target.
  sec = section('Task sampling', 'Share of updates per task against the scheduler\u2019s target ' +
                '(black tick). Sources: ' + runs.map(function (run) { return run.name + ': ' + run.share_source; }).join('; ') + '.');
  chart(sec, 'sampled share per task', runLegend(), function (svg) {
    var pw = W - M.l - M.r, ph = H - M.t - M.b;
    var hi = 0;
    tasks.forEach(function (t) {
      runs.forEach(function (run) {
        var s = run.share[t] || {};
        if (typeof s.actual === 'number' && s.actual > hi) hi = s.actual;
        if (typeof s.target === 'number' && s.target > hi) hi = s.target;
      });
    });
    hi = hi > 0 ? Math.min(1, hi * 1.1) : 1;
    function Y(v) { return M.t + ph * (1 - v / hi); }
    ticks(0, hi, 5).forEach(function (v) {
      svgEl('line', { x1: M.l, x2: M.l + pw, y1: Y(v), y2: Y(v), stroke: '#eee' }, svg);
      svgEl('text', { x: M.l - 5, y: Y(v) + 4, 'text-anchor': 'end' }, svg).textContent = fmt(v);
    });
    var group = pw / Math.max(1, tasks.length), bar = group * 0.8 / Math.max(1, runs.length);
    tasks.forEach(function (t, i) {
      var x0 = M.l + i * group + group * 0.1;
      runs.forEach(function (run, r) {
        var s = run.share[t] || {};
        var x = x0 + r * bar;
        if (typeof s.actual === 'number') {
          svgEl('rect', { x: x, y: Y(s.actual), width: bar * 0.9, height: M.t + ph - Y(s.actual), fill: runColor(r) }, svg);
        }
        if (typeof s.target === 'number') {
          svgEl('line', { x1: x - 2, x2: x + bar * 0.9 + 2, y1: Y(s.target), y2: Y(s.target), stroke: '#000', 'stroke-width': 2.5 }, svg);
        }
      });
      svgEl('text', { x: x0 + group * 0.4, y: M.t + ph + 14, 'text-anchor': 'middle' }, svg).textContent = t;
    });
    svgEl('line', { x1: M.l, x2: M.l + pw, y1: M.t + ph, y2: M.t + ph, stroke: '#999' }, svg);
  });

  // Stacked bars: milliseconds per update of each task, split by phase.
  sec = section('Throughput', 'Milliseconds per update of each task (from throughput.json), split into ' +
                'waiting for data, forward with the loss, backward, and clipping + optimizer update.');
  var rows = [];
  runs.forEach(function (run) {
    tasks.forEach(function (t) { if (run.throughput[t]) rows.push({ label: (runs.length > 1 ? run.name + ' / ' : '') + t, v: run.throughput[t] }); });
  });
  var rowHeight = 24;
  chart(sec, 'ms per update', phases.map(function (p) { return { name: p, color: phaseColors[p] }; }), function (svg) {
    if (!rows.length) {
      svgEl('text', { x: W / 2, y: M.t + 20, 'text-anchor': 'middle' }, svg).textContent = 'no throughput.json';
      return;
    }
    var left = 150, pw = W - left - M.r - 40, rh = rowHeight;
    var hi = 0;
    rows.forEach(function (row) {
      var total = 0;
      phases.forEach(function (p) { total += row.v[p]; });
      row.total = total;
      if (total > hi) hi = total;
    });
    hi = hi > 0 ? hi : 1;
    function X(v) { return left + pw * v / hi; }
    ticks(0, hi, 5).forEach(function (v) {
      svgEl('line', { x1: X(v), x2: X(v), y1: M.t, y2: M.t + rows.length * rh, stroke: '#eee' }, svg);
      svgEl('text', { x: X(v), y: M.t + rows.length * rh + 14, 'text-anchor': 'middle' }, svg).textContent = fmt(v);
    });
    rows.forEach(function (row, i) {
      var y = M.t + i * rh, x = left;
      svgEl('text', { x: left - 6, y: y + rh * 0.65, 'text-anchor': 'end' }, svg).textContent = row.label;
      phases.forEach(function (p) {
        var w = X(row.v[p]) - left;
        svgEl('rect', { x: x, y: y + 2, width: Math.max(0, w), height: rh - 4, fill: phaseColors[p] }, svg);
        x += w;
      });
      svgEl('text', { x: x + 4, y: y + rh * 0.65 }, svg).textContent = fmt(row.total);
    });
  }, M.t + Math.max(1, rows.length) * rowHeight + 24);

  // Val images of each detection task with true (green, dashed) and predicted (red)
  // boxes; one chart per run and task.
  var withExamples = runs.filter(function (run) { return run.examples && Object.keys(run.examples).length; });
  var withErrors = runs.filter(function (run) { return run.examples_error; });
  if (withExamples.length || withErrors.length) {
    sec = section('Detection examples', 'The first val images of each detection task: true boxes ' +
                  'dashed green, the checkpoint\u2019s best-scoring predictions red with label and score.');
    withErrors.forEach(function (run) {
      htmlEl('p', run.name + ': no examples: ' + run.examples_error, sec, 'note');
    });
    withExamples.forEach(function (run) {
      Object.keys(run.examples).forEach(function (task) {
        var images = run.examples[task];
        var side = 140, cols = 3, gap = 8;
        var rowsNeeded = Math.max(1, Math.ceil(images.length / cols));
        chart(sec, (runs.length > 1 ? run.name + ' / ' : '') + task, [
          { name: 'true', color: '#2ca02c' }, { name: 'predicted', color: '#d62728' }
        ], function (svg) {
          images.forEach(function (ex, i) {
            var scale = side / Math.max(ex.width, ex.height);
            var w = ex.width * scale, h = ex.height * scale;
            var x0 = 10 + (i % cols) * (side + gap), y0 = M.t + Math.floor(i / cols) * (side + gap);
            svgEl('image', { href: ex.image, x: x0, y: y0, width: w, height: h }, svg);
            function box(b, color, dash) {
              var attrs = { x: x0 + b[0] * w, y: y0 + b[1] * h, width: Math.max(0, (b[2] - b[0]) * w),
                            height: Math.max(0, (b[3] - b[1]) * h), fill: 'none', stroke: color, 'stroke-width': 1.5 };
              if (dash) attrs['stroke-dasharray'] = '4,3';
              svgEl('rect', attrs, svg);
            }
            ex.truth.forEach(function (b) { box(b, '#2ca02c', true); });
            ex.predicted.forEach(function (b) {
              box(b, '#d62728', false);
              svgEl('text', { x: x0 + b[0] * w + 2, y: y0 + b[1] * h + 10, style: 'fill:#d62728' }, svg).textContent =
                b[4] + ' ' + b[5].toFixed(2);
            });
          });
        }, M.t + rowsNeeded * (side + gap) + 8);
      });
    });
  }

  // VQA and visual entailment: the first val images of each task with the question or
  // hypothesis, the checkpoint's answer and the true answers; one chart per run and task.
  var withAnswers = runs.filter(function (run) { return run.answer_examples && Object.keys(run.answer_examples).length; });
  if (withAnswers.length) {
    sec = section('Answer examples', 'The first val records of each task that answers a text about an ' +
                  'image (VQA, visual entailment): the question or hypothesis, the checkpoint\u2019s answer ' +
                  'with its probability (green when it is a true answer) and the true answers with their scores.');
    withAnswers.forEach(function (run) {
      Object.keys(run.answer_examples).forEach(function (task) {
        var items = run.answer_examples[task];
        var side = 96, gap = 10, textX = 10 + side + 12, lineH = 15;
        // Words wrapped into lines of at most `width` characters, `max` lines.
        function wrap(text, width, max) {
          var lines = [], line = '';
          String(text).split(/\s+/).forEach(function (word) {
            if (line && (line + ' ' + word).length > width) { lines.push(line); line = word; }
            else line = line ? line + ' ' + word : word;
          });
          if (line) lines.push(line);
          if (lines.length > max) { lines = lines.slice(0, max); lines[max - 1] += ' \u2026'; }
          return lines;
        }
        chart(sec, (runs.length > 1 ? run.name + ' / ' : '') + task, [
          { name: 'predicted, a true answer', color: '#2ca02c' }, { name: 'predicted, not a true answer', color: '#d62728' }
        ], function (svg) {
          items.forEach(function (ex, i) {
            var scale = side / Math.max(ex.width, ex.height);
            var y0 = M.t + i * (side + gap);
            svgEl('image', { href: ex.image, x: 10, y: y0, width: ex.width * scale, height: ex.height * scale }, svg);
            var y = y0 + 12;
            var lines = ex.text === null ? ['(the dataset gives no text)'] : wrap('\u201c' + ex.text + '\u201d', 46, 3);
            lines.forEach(function (line) {
              svgEl('text', { x: textX, y: y, style: 'font-weight:600' }, svg).textContent = line;
              y += lineH;
            });
            var right = ex.truth.some(function (t) { return t[0] === ex.predicted[0]; });
            svgEl('text', { x: textX, y: y, style: 'fill:' + (right ? '#2ca02c' : '#d62728') }, svg).textContent =
              'predicted: ' + ex.predicted[0] + ' (' + ex.predicted[1].toFixed(2) + ')';
            y += lineH;
            var truth = ex.truth.length ? ex.truth.map(function (t) { return t[0] + ' (' + t[1].toFixed(2) + ')'; }).join(', ')
                                        : '(no label)';
            wrap('true: ' + truth, 50, 2).forEach(function (line) {
              svgEl('text', { x: textX, y: y }, svg).textContent = line;
              y += lineH;
            });
          });
        }, M.t + Math.max(1, items.length) * (side + gap) + 8);
      });
    });
  }

  // The final evaluation (eval.json) of every run side by side.
  htmlEl('h2', 'Final metrics', root);
  htmlEl('p', 'eval.json of each run; chance is that of the headline metric.', root, 'note');
  var ft = htmlEl('table', null, root);
  var head = htmlEl('tr', null, ft);
  ['task', 'metric'].concat(runs.map(function (run) { return run.name; })).concat(['chance']).forEach(function (h) { htmlEl('th', h, head); });
  tasks.forEach(function (task) {
    var metrics = union(function (run) { return Object.keys(run.final[task] || {}); });
    metrics.forEach(function (metric, i) {
      var tr = htmlEl('tr', null, ft);
      htmlEl('td', i ? '' : task, tr, 'name'); htmlEl('td', metric, tr, 'name');
      runs.forEach(function (run) {
        var v = (run.final[task] || {})[metric];
        htmlEl('td', typeof v === 'number' ? v.toFixed(4) : '', tr);
      });
      var c = i === 0 ? runs.map(function (run) { return run.chance[task]; }).filter(function (x) { return typeof x === 'number'; })[0] : undefined;
      htmlEl('td', typeof c === 'number' ? c.toFixed(4) : '', tr);
    });
  });

  document.body.setAttribute('data-charts-expected', String(expected));
  document.body.setAttribute('data-charts-drawn', String(drawn));
  document.body.setAttribute('data-status', 'done');
})();
)JS";
}

}  // namespace unitrain::report
