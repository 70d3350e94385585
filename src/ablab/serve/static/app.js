// ablab serve: live regions and sortable tables. No inline handlers, no external requests.
(function () {
  "use strict";
  function prepare(root) {
    Array.prototype.forEach.call(root.querySelectorAll("table.sortable thead th"), function (th) {
      th.tabIndex = 0;
      if (!th.hasAttribute("aria-sort")) th.setAttribute("aria-sort", "none");
    });
  }
  function cellKey(td) {
    if (!td) return [2, ""];
    var v = td.getAttribute("data-v");
    if (v !== null && v !== "") { var f = parseFloat(v); if (!isNaN(f)) return [0, f]; }
    var s = td.textContent.trim();
    var n = parseFloat(s);
    if (s !== "" && !isNaN(n) && /^[-+0-9.eE]+$/.test(s)) return [0, n];
    return (s === "" || s === "\u2014") ? [2, ""] : [1, s.toLowerCase()];
  }
  function sortBy(th) {
    var table = th.closest("table");
    var col = Array.prototype.indexOf.call(th.parentNode.cells, th);
    var asc = th.getAttribute("aria-sort") !== "ascending";
    Array.prototype.forEach.call(th.parentNode.cells, function (h) { h.setAttribute("aria-sort", "none"); });
    th.setAttribute("aria-sort", asc ? "ascending" : "descending");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows).map(function (r, i) { return { r: r, k: cellKey(r.cells[col]), i: i }; });
    rows.sort(function (x, y) {
      if (x.k[0] !== y.k[0]) return x.k[0] - y.k[0];
      var c = x.k[1] < y.k[1] ? -1 : (x.k[1] > y.k[1] ? 1 : 0);
      return (asc ? c : -c) || (x.i - y.i);
    });
    rows.forEach(function (e) { body.appendChild(e.r); });
  }
  document.addEventListener("click", function (e) {
    var th = e.target.closest && e.target.closest("table.sortable thead th");
    if (th) sortBy(th);
  });
  document.addEventListener("keydown", function (e) {
    var th = e.target.closest && e.target.closest("table.sortable thead th");
    if (th && (e.key === "Enter" || e.key === " ")) { e.preventDefault(); sortBy(th); }
  });
  function poll(region) {
    var src = region.getAttribute("data-live");
    var every = parseInt(region.getAttribute("data-every") || "1000", 10);
    var etag = null;
    function tick() {
      var headers = etag ? { "If-None-Match": etag } : {};
      fetch(src, { headers: headers, credentials: "same-origin", cache: "no-store" }).then(function (r) {
        if (r.status === 200) {
          etag = r.headers.get("ETag");
          return r.text().then(function (html) {
            var active = document.activeElement && document.activeElement.id;
            region.innerHTML = html;  // server-rendered, every user string escaped
            prepare(region);
            region.setAttribute("data-updated", String(Date.now()));
            if (active) { var el = document.getElementById(active); if (el) el.focus(); }
          });
        }
      }).catch(function () { /* server gone: keep the last view */ }).then(function () {
        setTimeout(tick, every);
      });
    }
    setTimeout(tick, every);
  }
  prepare(document);
  Array.prototype.forEach.call(document.querySelectorAll("[data-live]"), poll);
})();
