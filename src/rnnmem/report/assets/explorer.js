/* rnnmem connectivity explorer: renders the data embedded in #rnnmem-data (see
   rnnmem/report/explorer.py for its fields). No network access except, in live mode
   (rnnmem serve), POST requests to the page's own api/analyze endpoint.

   Interaction: a click/tap on a character (or the arrow keys) SELECTS the target position t~;
   every character up to it is coloured by its connectivity to that target. Hovering a character
   only READS its value (the readout line under each text and the tooltip): it never changes the
   selection. Colour scale: log (default; the value's decades below 1 over a floor of DECADES
   decades, so long-range links 1e-2..1e-3 stay visible) or linear (the value itself). */
"use strict";
(function () {
  var DATA = JSON.parse(document.getElementById("rnnmem-data").textContent);
  var STOPS = DATA.viridis; // [[r, g, b], ...] 0..255, evenly spaced over [0, 1]
  var EXAMPLES = DATA.examples || [];
  var current = null;       // the analysis on screen
  var selected = -1;
  var view = { scale: DATA.scale || "log", decades: DATA.decades || 4 };

  /* viridis: piecewise-linear interpolation between the stops (matplotlib's table). */
  function viridis(v) {
    if (!(v >= 0)) v = 0;
    if (v > 1) v = 1;
    var x = v * (STOPS.length - 1);
    var i = Math.min(Math.floor(x), STOPS.length - 2);
    var f = x - i, a = STOPS[i], b = STOPS[i + 1];
    return [0, 1, 2].map(function (c) { return Math.round(a[c] + (b[c] - a[c]) * f); });
  }
  /* Position on the colour bar of a connectivity value already divided by its scale:
     linear: the value; log: (log10(value) + D) / D, clipped to [0, 1] (0 and below 10^-D: the floor). */
  function level(v) {
    if (view.scale === "linear") return v;
    if (!(v > 0)) return 0;
    return Math.max(0, Math.min(1, (Math.log10(v) + view.decades) / view.decades));
  }
  function rgb(c) { return "rgb(" + c[0] + ", " + c[1] + ", " + c[2] + ")"; }
  function inkFor(c) { // dark text on light colours, white on dark ones (relative luminance)
    var lum = (0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]) / 255;
    return lum > 0.5 ? "rgb(17, 17, 17)" : "rgb(255, 255, 255)";
  }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function pct(p) { return (100 * p).toFixed(1) + "%"; }
  function shown(ch) { return ch === " " ? "\u2423" : ch; }
  function sci(v) { return v === 0 ? "0" : v.toExponential(2).replace("e", "\u00d710^").replace("^+", "^"); }

  function legend() {
    var box = document.getElementById("legend");
    box.textContent = "";
    var stops = STOPS.map(function (c, i) { return rgb(c) + " " + (100 * i / (STOPS.length - 1)).toFixed(2) + "%"; });
    var wrap = el("div", "barwrap");
    var bar = el("div", "bar");
    bar.style.background = "linear-gradient(to right, " + stops.join(", ") + ")";
    wrap.appendChild(bar);
    var ticks = el("div", "ticks");
    var labels = [];
    if (view.scale === "log") {
      var step = view.decades > 6 ? 2 : 1;
      for (var d = view.decades; d >= 0; d--) {
        if (d === view.decades || d % step === 0) labels.push([1 - d / view.decades, d === 0 ? "1" : "1e-" + d]);
      }
      labels[0][1] = "\u2264" + labels[0][1];
    } else {
      labels = [[0, "0"], [0.25, "0.25"], [0.5, "0.5"], [0.75, "0.75"], [1, "1"]];
    }
    labels.forEach(function (l) {
      var t = el("span", "tick", l[1]);
      t.style.left = (100 * l[0]).toFixed(2) + "%";
      ticks.appendChild(t);
    });
    wrap.appendChild(ticks);
    box.appendChild(wrap);
    box.appendChild(el("span", "scale-label", DATA.scale_label + (view.scale === "log"
      ? " (log scale, floor " + view.decades + " decades below the max)" : " (linear scale)")));
  }

  function render(data) {
    current = data;
    var main = document.getElementById("models");
    main.textContent = "";
    main.style.setProperty("--columns", String(Math.max(1, data.models.length)));
    data.models.forEach(function (m) {
      var sec = el("section", "model");
      sec.dataset.model = m.name;
      sec.appendChild(el("h2", "", m.name));
      sec.appendChild(el("p", "desc", m.description));
      var txt = el("div", "text");
      txt.setAttribute("aria-label", "text as seen by " + m.name);
      if (!data.tokens.length) txt.appendChild(el("span", "empty", "(no text yet)"));
      data.tokens.forEach(function (ch, i) {
        var s = el("span", "ch", ch);
        s.dataset.i = String(i);
        txt.appendChild(s);
      });
      sec.appendChild(txt);
      var readout = el("div", "readout");
      readout.setAttribute("role", "status");
      sec.appendChild(readout);
      sec.appendChild(el("div", "info"));
      sec.appendChild(el("ol", "suggestions"));
      main.appendChild(sec);
    });
    selected = -1;
    if (data.tokens.length) select(data.tokens.length - 1);
  }

  function paint() {
    if (!current || selected < 0) return;
    var i = selected;
    var panels = document.querySelectorAll("#models .model");
    current.models.forEach(function (m, mi) {
      var row = m.conn[i];
      var scale = current.normalize ? 1 : (m.max > 0 ? m.max : 1);
      var spans = panels[mi].querySelectorAll(".ch");
      for (var j = 0; j < spans.length; j++) {
        var s = spans[j];
        if (j <= i) {
          var c = viridis(level(row[j] / scale));
          s.style.backgroundColor = rgb(c);
          s.style.color = inkFor(c);
          s.classList.remove("future");
          s.title = "connectivity " + sci(row[j]);
        } else {
          s.style.backgroundColor = "";
          s.style.color = "";
          s.classList.add("future");
          s.title = "";
        }
        s.classList.toggle("sel", j === i);
      }
    });
  }

  function select(i) {
    if (!current || i < 0 || i >= current.tokens.length) return;
    selected = i;
    paint();
    var panels = document.querySelectorAll("#models .model");
    current.models.forEach(function (m, mi) {
      var panel = panels[mi];
      var info = panel.querySelector(".info");
      info.textContent = "";
      info.appendChild(document.createTextNode("Selected character " + (i + 1) + " of " + current.tokens.length + " "));
      info.appendChild(el("b", "", "\u2018" + shown(current.tokens[i]) + "\u2019"));
      info.appendChild(document.createTextNode(": colours show the gradient of the logit of "));
      info.appendChild(el("b", "", m.targets[i]));
      info.appendChild(document.createTextNode(" (" + m.target_source[i] + ")."));
      var ol = panel.querySelector("ol.suggestions");
      ol.textContent = "";
      m.top[i].forEach(function (entry, r) {
        var li = el("li");
        li.dataset.word = entry[0];
        li.dataset.prob = String(entry[1]);
        if (m.text_words && m.text_words[i] === entry[0]) li.classList.add("hit");
        li.appendChild(el("span", "rank", String(r + 1) + "."));
        li.appendChild(el("span", "word", entry[0]));
        li.appendChild(el("span", "prob", pct(entry[1])));
        var track = el("span", "track"), fill = el("span", "fill");
        fill.style.width = (100 * entry[1]).toFixed(1) + "%";
        fill.style.display = "block";
        track.appendChild(fill);
        li.appendChild(track);
        ol.appendChild(li);
      });
    });
    readout(-1);
  }

  /* The hovered character's value relative to the selected target, in every panel. */
  function readout(j) {
    var panels = document.querySelectorAll("#models .model");
    if (!current) return;
    current.models.forEach(function (m, mi) {
      var box = panels[mi].querySelector(".readout");
      box.dataset.j = String(j);
      if (j < 0 || selected < 0) {
        box.dataset.value = "";
        box.textContent = "Hover a character to read its connectivity to the selected one; click to select.";
        return;
      }
      var head = "\u2018" + shown(current.tokens[j]) + "\u2019 (character " + (j + 1) + ", ";
      if (j > selected) {
        box.dataset.value = "";
        box.textContent = head + "after the selected one): not read yet, no connectivity.";
        return;
      }
      var v = m.conn[selected][j];
      box.dataset.value = String(v);
      var back = selected - j;
      box.textContent = head + (back === 0 ? "the selected one itself" : back + " before the selected one") +
        "): connectivity " + sci(v) + (current.normalize ? " of the max over earlier characters" : "") + ".";
    });
  }

  function spanIndex(target) {
    var s = target && target.closest ? target.closest(".ch") : null;
    return s ? parseInt(s.dataset.i, 10) : -1;
  }
  var models = document.getElementById("models");
  models.addEventListener("pointerover", function (e) { readout(spanIndex(e.target)); });
  models.addEventListener("pointerleave", function () { readout(-1); });
  models.addEventListener("click", function (e) { var i = spanIndex(e.target); if (i >= 0) select(i); });
  document.addEventListener("keydown", function (e) {
    if (e.target && (e.target.id === "input" || e.target.tagName === "SELECT")) return;
    if (e.key === "ArrowLeft") select(selected - 1);
    if (e.key === "ArrowRight") select(selected + 1);
  });

  /* view controls: colour scale, floor, example text */
  var scaleBox = document.getElementById("scale");
  var decadesBox = document.getElementById("decades");
  var exampleBox = document.getElementById("example");
  [2, 3, 4, 5, 6, 8, 10, 12].concat([view.decades]).filter(function (d, k, all) {
    return all.indexOf(d) === k;
  }).sort(function (a, b) { return a - b; }).forEach(function (d) {
    decadesBox.appendChild(new Option(d + " decades (" + (d === 1 ? "0.1" : "1e-" + d) + ")", String(d)));
  });
  scaleBox.value = view.scale;
  decadesBox.value = String(view.decades);
  decadesBox.disabled = view.scale !== "log";
  scaleBox.addEventListener("change", function () {
    view.scale = scaleBox.value;
    decadesBox.disabled = view.scale !== "log";
    legend(); paint();
  });
  decadesBox.addEventListener("change", function () {
    view.decades = parseFloat(decadesBox.value);
    legend(); paint();
  });

  var input = document.getElementById("input");
  var status = document.getElementById("status");
  var ask = null;
  if (EXAMPLES.length > 1 || (DATA.live && EXAMPLES.length)) {
    document.getElementById("example-field").hidden = false;
    var groups = {};
    if (DATA.live) exampleBox.appendChild(new Option("your text (type below)", "own"));
    EXAMPLES.forEach(function (ex, k) {
      var parent = exampleBox;
      if (ex.group) {
        if (!groups[ex.group]) {
          groups[ex.group] = document.createElement("optgroup");
          groups[ex.group].label = ex.group;
          exampleBox.appendChild(groups[ex.group]);
        }
        parent = groups[ex.group];
      }
      parent.appendChild(new Option(ex.label, String(k)));
    });
    exampleBox.value = DATA.live ? "own" : "0";
    exampleBox.addEventListener("change", function () {
      if (exampleBox.value === "own") return;
      var ex = EXAMPLES[parseInt(exampleBox.value, 10)];
      var data = ex.data || (ex.main && !DATA.live ? DATA : null);
      if (data) { render(data); return; }
      if (DATA.live) { input.value = ex.text.replace(/^ /, ""); ask(); }
    });
  }

  /* live mode (rnnmem serve): analyse the text box as you type */
  if (DATA.live) {
    document.getElementById("controls").hidden = false;
    input.value = DATA.text.replace(/^ /, "");
    var timer = null, seq = 0;
    ask = function () {
      var mine = ++seq;
      status.className = "";
      status.textContent = "computing\u2026";
      var t0 = performance.now();
      fetch(DATA.api, {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ text: input.value })
      }).then(function (r) {
        return r.json().then(function (body) { return { ok: r.ok, body: body }; });
      }).then(function (res) {
        if (mine !== seq) return; // a newer request is on its way
        if (!res.ok) throw new Error(res.body.error || "request failed");
        render(res.body);
        status.textContent = "computed " + res.body.tokens.length + " characters for " + res.body.models.length +
          " model(s) in " + ((performance.now() - t0) / 1000).toFixed(2) + " s";
        status.dataset.seq = String(mine);
      }).catch(function (err) {
        if (mine !== seq) return;
        status.className = "error";
        status.textContent = "error: " + err.message;
      });
    };
    input.addEventListener("input", function () {
      if (exampleBox.options.length) exampleBox.value = "own";
      if (timer) clearTimeout(timer);
      timer = setTimeout(ask, 250);
    });
  }

  legend();
  render(DATA);
  document.body.dataset.ready = "1";
})();
