// Small behaviours every page may use, kept out of the templates so the Content-Security-Policy can
// forbid inline scripts and on...= handlers.
(function () {
  // A read-only field holding something to copy (an API key, an invitation link) selects itself.
  document.addEventListener("click", (event) => {
    const field = event.target.closest && event.target.closest("[data-select-on-click]");
    if (field) field.select();
  });
})();

// A form with data-confirm asks before it is sent (deleting a dataset): the CSP allows no inline handler.
document.addEventListener("submit", function (event) {
  const question = event.target.getAttribute && event.target.getAttribute("data-confirm");
  if (question && !window.confirm(question)) event.preventDefault();
});
