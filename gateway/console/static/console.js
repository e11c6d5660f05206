"use strict";
// Copy buttons (<button data-copy="text">): one delegated listener, so the rows a live refresh
// swaps in work too. Without the clipboard API (plain http off localhost) the text is selected
// for the operator to copy.
document.addEventListener("click", function (event) {
  const button = event.target.closest("button[data-copy]");
  if (!button) {
    return;
  }
  const text = button.getAttribute("data-copy");
  const label = button.textContent;
  const copied = function () {
    button.textContent = "copied";
    button.classList.add("copied");
    window.setTimeout(function () {
      button.textContent = label;
      button.classList.remove("copied");
    }, 1500);
  };
  const select = function () {
    const code = button.parentElement.querySelector("code");
    if (code) {
      window.getSelection().selectAllChildren(code);
    }
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(copied, select);
  } else {
    select();
  }
});
