// Small behaviours every page may use, kept out of the templates so the Content-Security-Policy can
// forbid inline scripts and on...= handlers.
(function () {
  // A read-only field holding something to copy (an API key, an invitation link) selects itself.
  document.addEventListener("click", (event) => {
    const field = event.target.closest && event.target.closest("[data-select-on-click]");
    if (field) field.select();
  });
})();
