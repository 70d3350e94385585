"""Building blocks of the HTML report: escaping, tables, the inline stylesheet and script.

Every user-provided string goes through :func:`esc` (``html.escape`` with quotes) before it
reaches the page; cells carry their raw number in ``data-v`` for the sorting script.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from collections.abc import Mapping, Sequence
from typing import Any

from ablab.report._fmt import DASH, finite, num


def esc(s: Any) -> str:
    """HTML-escape any value's ``str`` (``& < > " '``)."""
    return html.escape(str(s), quote=True)


class Cell:
    """A table cell: already-escaped HTML plus an optional number for sorting."""

    __slots__ = ("html", "value", "cls", "style")

    def __init__(self, html_: str, value: Any = None, cls: str = "", style: str = "") -> None:
        self.html, self.value, self.cls, self.style = html_, value, cls, style


def ncell(x: Any, digits: int = 4, fmt=None) -> Cell:
    """A numeric cell: formatted text, raw value for sorting."""
    text = fmt(x) if fmt else num(x, digits)
    return Cell(esc(text), x if finite(x) else None, "num")


def tcell(s: Any) -> Cell:
    return Cell(esc(s if s is not None else DASH))


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[Cell | str]],
    *,
    sortable: bool = False,
    cls: str = "",
    tid: str = "",
) -> str:
    """An HTML table; ``headers`` are plain strings (escaped here), cells :class:`Cell` or
    plain strings (escaped here)."""
    classes = " ".join(c for c in ("sortable" if sortable else "", cls) if c)
    out = [f'<table class="{classes}"' + (f' id="{esc(tid)}"' if tid else "") + "><thead><tr>"]
    out += [f'<th scope="col">{esc(h)}</th>' for h in headers]
    out.append("</tr></thead><tbody>")
    for r in rows:
        out.append("<tr>")
        for c in r:
            if not isinstance(c, Cell):
                c = tcell(c)
            attrs = ""
            if c.value is not None:
                attrs += f' data-v="{float(c.value)!r}"'
            if c.cls:
                attrs += f' class="{c.cls}"'
            if c.style:
                attrs += f' style="{esc(c.style)}"'
            out.append(f"<td{attrs}>{c.html}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def mapping_html(obj: Any, depth: int = 0, max_items: int = 200) -> str:
    """A nested mapping/list as nested definition tables (every key and value escaped)."""
    if isinstance(obj, Mapping):
        if not obj:
            return f'<span class="muted">{DASH}</span>'
        items = list(obj.items())
        rows = [
            f"<tr><th>{esc(k)}</th><td>{mapping_html(v, depth + 1, max_items)}</td></tr>"
            for k, v in items[:max_items]
        ]
        if len(items) > max_items:
            rows.append(
                f'<tr><td colspan="2" class="muted">… {len(items) - max_items} more</td></tr>'
            )
        return '<table class="kv">' + "".join(rows) + "</table>"
    if isinstance(obj, list | tuple):
        if not obj:
            return f'<span class="muted">{DASH}</span>'
        if all(not isinstance(x, Mapping | list | tuple) for x in obj):
            shown = ", ".join(esc(x) for x in obj[:max_items])
            return shown + (f" … ({len(obj)} in all)" if len(obj) > max_items else "")
        return (
            "<ol>"
            + "".join(f"<li>{mapping_html(x, depth + 1, max_items)}</li>" for x in obj[:max_items])
            + "</ol>"
        )
    if obj is None:
        return f'<span class="muted">{DASH}</span>'
    if isinstance(obj, float):
        return esc(num(obj, 6))
    return esc(obj)


def config_text(cfg: Any) -> str:
    return esc(json.dumps(cfg, sort_keys=True, default=str, ensure_ascii=False))


CSS = """
:root{--fg:#1f2328;--muted:#656d76;--line:#d0d7de;--bg:#fff;--soft:#f6f8fa;--good:#1a7f37;--bad:#cf222e}
*{box-sizing:border-box}
body{font:14px/1.5 -apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:var(--fg);background:var(--bg);margin:0}
header{padding:24px 32px;border-bottom:1px solid var(--line);background:var(--soft)}
header h1{margin:0 0 4px;font-size:24px;overflow-wrap:anywhere}
main{padding:8px 32px 48px;max-width:1200px}
nav{padding:8px 32px;border-bottom:1px solid var(--line);font-size:13px}
nav a{margin-right:14px;color:#0969da;text-decoration:none}
h2{border-bottom:1px solid var(--line);padding-bottom:4px;margin-top:36px}
h3{margin-top:24px}
.muted{color:var(--muted)}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0}
.card{border:1px solid var(--line);border-radius:6px;padding:10px 14px;min-width:120px}
.card b{display:block;font-size:20px}
table{border-collapse:collapse;margin:8px 0 16px;font-size:13px}
th,td{border:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
thead th{background:var(--soft)}
table.sortable thead th{cursor:pointer;user-select:none}
table.sortable thead th[aria-sort=ascending]::after{content:" \\25B2"}
table.sortable thead th[aria-sort=descending]::after{content:" \\25BC"}
table.kv th{background:var(--soft);font-weight:600;white-space:nowrap}
.v-better{color:var(--good);font-weight:600}.v-worse{color:var(--bad);font-weight:600}
.v-inconclusive{color:var(--muted)}.v-equivalent{color:#0969da;font-weight:600}
.ok{color:var(--good)}.missing{color:var(--bad)}
svg.plot{max-width:100%;height:auto;display:block;margin:8px 0}
.figs{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}
code{background:var(--soft);padding:1px 4px;border-radius:4px;overflow-wrap:anywhere}
ol{margin:0;padding-left:20px}
"""

SCRIPT = """
(function(){
  function key(td){
    var v=td.getAttribute('data-v');
    if(v!==null&&v!==''){var f=parseFloat(v);if(!isNaN(f))return [0,f];}
    var s=td.textContent.trim();
    return (s===''||s==='\\u2014')?[2,'']:[1,s.toLowerCase()];
  }
  function cmp(a,b){
    if(a[0]!==b[0])return a[0]-b[0];
    return a[1]<b[1]?-1:(a[1]>b[1]?1:0);
  }
  function sortBy(table,col,th){
    var asc=th.getAttribute('aria-sort')!=='ascending';
    var heads=table.tHead.rows[0].cells;
    for(var i=0;i<heads.length;i++)heads[i].setAttribute('aria-sort','none');
    th.setAttribute('aria-sort',asc?'ascending':'descending');
    var body=table.tBodies[0];
    var rows=Array.prototype.slice.call(body.rows);
    var keyed=rows.map(function(r,i){return {r:r,k:key(r.cells[col]),i:i};});
    keyed.sort(function(x,y){
      if(x.k[0]===2||y.k[0]===2){if(x.k[0]!==y.k[0])return x.k[0]===2?1:-1;return x.i-y.i;}
      var c=cmp(x.k,y.k);return (asc?c:-c)||(x.i-y.i);
    });
    keyed.forEach(function(e){body.appendChild(e.r);});
  }
  var tables=document.querySelectorAll('table.sortable');
  Array.prototype.forEach.call(tables,function(table){
    var heads=table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads,function(th,col){
      th.tabIndex=0;th.setAttribute('aria-sort','none');
      th.addEventListener('click',function(){sortBy(table,col,th);});
      th.addEventListener('keydown',function(e){
        if(e.key==='Enter'||e.key===' '){e.preventDefault();sortBy(table,col,th);}
      });
    });
  });
})();
"""


def script_hash() -> str:
    """CSP hash source of :data:`SCRIPT` (only this inline script may run in the page)."""
    digest = hashlib.sha256(SCRIPT.encode()).digest()
    return "'sha256-" + base64.b64encode(digest).decode() + "'"
