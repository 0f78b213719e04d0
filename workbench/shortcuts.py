"""Keyboard shortcuts: a page script that clicks the workbench's buttons (by elem_id), so a key
does exactly what the button does (and sends the same ids of what is on screen). Keys are
ignored while typing in a text field, except Ctrl/⌘+S (save) and Escape (leave the field)."""

from __future__ import annotations

import json

SHORTCUTS = {  # key → (button elem_id, what it does)
    "j": ("wb-next", "next sample"),
    "k": ("wb-prev", "previous sample"),
    "a": ("wb-accept", "accept"),
    "x": ("wb-reject", "reject"),
    "f": ("wb-needs-fix", "needs fix"),
    "g": ("wb-gt", "toggle ground truth boxes"),
    "[": ("wb-step-prev", "edit the previous step"),
    "]": ("wb-step-next", "edit the next step"),
}
SAVE_BUTTON = "wb-save"
SEARCH_BOX = "wb-search"


def shortcuts_head() -> str:
    """The `<script>` for `launch(head=...)`."""
    keys = json.dumps({k: v[0] for k, v in SHORTCUTS.items()})
    return f"""<script>
(() => {{
  const keys = {keys};
  const press = (id) => {{
    const el = document.querySelector('#' + id);
    const target = el && (el.matches('button, input') ? el : el.querySelector('button, input'));
    if (target) target.click();
    return Boolean(target);
  }};
  document.addEventListener('keydown', (e) => {{
    const t = e.target;
    const typing = t && (t.tagName === 'TEXTAREA' || t.isContentEditable ||
      (t.tagName === 'INPUT' && !['checkbox', 'radio', 'button', 'range'].includes(t.type)));
    if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === 's') {{
      if (press('{SAVE_BUTTON}')) e.preventDefault();
      return;
    }}
    if (typing) {{ if (e.key === 'Escape') t.blur(); return; }}
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === '/') {{
      const box = document.querySelector('#{SEARCH_BOX} textarea, #{SEARCH_BOX} input');
      if (box) {{ box.focus(); e.preventDefault(); }}
      return;
    }}
    if (keys[e.key] && press(keys[e.key])) e.preventDefault();
  }});
}})();
</script>"""


def shortcuts_markdown() -> str:
    rows = [f"| `{k}` | {what} |" for k, (_, what) in SHORTCUTS.items()]
    return "\n".join(
        [
            "| key | action |",
            "|---|---|",
            *rows,
            "| `Ctrl+S` / `⌘+S` | save the edit |",
            "| `/` | search |",
            "| `Esc` | leave a text field (then keys work again) |",
            "| `c` / `d` / `Delete` | in the box editor, once clicked: draw a new box / move and resize "
            "boxes / remove the selected box |",
        ]
    )
