/* rnnmem connectivity explorer: renders the data embedded in #rnnmem-data (see
   rnnmem/report/explorer.py for its fields). No network access except, in live mode
   (rnnmem serve), POST requests to the page's own api/analyze endpoint. */
"use strict";
(function () {
  var DATA = JSON.parse(document.getElementById("rnnmem-data").textContent);
  var STOPS = DATA.viridis; // [[r, g, b], ...] 0..255, evenly spaced over [0, 1]
  var current = null;       // the analysis on screen
  var selected = -1;

  /* viridis: piecewise-linear interpolation between the stops (matplotlib's table). */
  function viridis(v) {
    if (!(v >= 0)) v = 0;
    if (v > 1) v = 1;
    var x = v * (STOPS.length - 1);
    var i = Math.min(Math.floor(x), STOPS.length - 2);
    var f = x - i, a = STOPS[i], b = STOPS[i + 1];
    return [0, 1, 2].map(function (c) { return Math.round(a[c] + (b[c] - a[c]) * f); });
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

  function legend() {
    var box = document.getElementById("legend");
    box.textContent = "";
    var stops = STOPS.map(function (c, i) { return rgb(c) + " " + (100 * i / (STOPS.length - 1)).toFixed(2) + "%"; });
    var bar = el("div", "bar");
    bar.style.background = "linear-gradient(to right, " + stops.join(", ") + ")";
    box.appendChild(el("span", "", "0"));
    box.appendChild(bar);
    box.appendChild(el("span", "", "1"));
    box.appendChild(el("span", "", DATA.scale_label));
  }

  function render(data) {
    current = data;
    var main = document.getElementById("models");
    main.textContent = "";
    main.style.setProperty("--columns", String(Math.max(1, data.models.length)));
    data.models.forEach(function (m, mi) {
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
      sec.appendChild(el("div", "info"));
      sec.appendChild(el("ol", "suggestions"));
      main.appendChild(sec);
    });
    selected = -1;
    if (data.tokens.length) select(data.tokens.length - 1);
  }

  function select(i) {
    if (!current || i < 0 || i >= current.tokens.length) return;
    selected = i;
    var panels = document.querySelectorAll("#models .model");
    current.models.forEach(function (m, mi) {
      var panel = panels[mi];
      var row = m.conn[i];
      var scale = current.normalize ? 1 : (m.max > 0 ? m.max : 1);
      var spans = panel.querySelectorAll(".ch");
      for (var j = 0; j < spans.length; j++) {
        var s = spans[j];
        if (j <= i) {
          var c = viridis(row[j] / scale);
          s.style.backgroundColor = rgb(c);
          s.style.color = inkFor(c);
          s.classList.remove("future");
          s.title = "connectivity " + row[j].toPrecision(3);
        } else {
          s.style.backgroundColor = "";
          s.style.color = "";
          s.classList.add("future");
          s.title = "";
        }
        s.classList.toggle("sel", j === i);
      }
      var info = panel.querySelector(".info");
      info.textContent = "";
      info.appendChild(document.createTextNode("Character " + (i + 1) + " of " + current.tokens.length + " "));
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
  }

  function spanIndex(target) {
    var s = target && target.closest ? target.closest(".ch") : null;
    return s ? parseInt(s.dataset.i, 10) : -1;
  }
  var models = document.getElementById("models");
  models.addEventListener("pointerover", function (e) { var i = spanIndex(e.target); if (i >= 0) select(i); });
  models.addEventListener("click", function (e) { var i = spanIndex(e.target); if (i >= 0) select(i); });
  document.addEventListener("keydown", function (e) {
    if (e.target && e.target.id === "input") return;
    if (e.key === "ArrowLeft") select(selected - 1);
    if (e.key === "ArrowRight") select(selected + 1);
  });

  /* live mode (rnnmem serve): analyse the text box as you type */
  if (DATA.live) {
    var box = document.getElementById("controls");
    var input = document.getElementById("input");
    var status = document.getElementById("status");
    box.hidden = false;
    input.value = DATA.text.replace(/^ /, "");
    var timer = null, seq = 0;
    var ask = function () {
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
      if (timer) clearTimeout(timer);
      timer = setTimeout(ask, 250);
    });
  }

  legend();
  render(DATA);
  document.body.dataset.ready = "1";
})();
