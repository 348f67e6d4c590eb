/* The console's few behaviours, from a static file: the pages' Content-Security-Policy allows no inline script.
   A button with data-copy="<input id>" copies that field's value and says so. */
"use strict";

document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  const field = document.getElementById(button.dataset.copy);
  const label = button.dataset.label || button.textContent;
  button.dataset.label = label;
  field.select();
  try {
    await navigator.clipboard.writeText(field.value);
    button.textContent = "Copied";
  } catch (error) {
    button.textContent = "Selected: press Ctrl+C"; /* no clipboard access (plain http, a refused permission) */
  }
  setTimeout(() => { button.textContent = label; }, 2500);
});
