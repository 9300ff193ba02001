// Copy buttons: copy the text of the element named by data-copy-target.
// The pages work without this script; the key can always be selected by hand.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-copy-target]");
  if (!button) return;
  const target = document.getElementById(button.dataset.copyTarget);
  try {
    await navigator.clipboard.writeText(target.textContent.trim());
    button.textContent = "Copied";
  } catch {
    window.getSelection().selectAllChildren(target);
    button.textContent = "Press Ctrl+C";
  }
});
