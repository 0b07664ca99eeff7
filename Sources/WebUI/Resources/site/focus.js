// Lists are rebuilt when the overview changes; keepFocus puts the keyboard focus back on the
// element with the same data-focus-key, so a rebuild never throws a keyboard user out.

export function keepFocus(container, rebuild) {
  const active = document.activeElement;
  const key = active && container.contains(active) ? active.dataset.focusKey : undefined;
  rebuild();
  if (key === undefined) return;
  for (const node of container.querySelectorAll('[data-focus-key]')) {
    if (node.dataset.focusKey === key) {
      node.focus();
      return;
    }
  }
  // The element is gone: keep the focus inside the container if it can take it.
  if (container.tabIndex >= 0) container.focus();
}
