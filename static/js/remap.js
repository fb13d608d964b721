// The mapping table and format (the wizard's Data step, a dataset's page): choosing a column or a format
// sends the form at once, so the result of the mapping shows without another click. Without JavaScript,
// "Check the data" (or "Save the mapping") does it.
(function () {
  document.querySelectorAll("form[data-upload], form[data-remap-form]").forEach(function (form) {
    const button = form.querySelector("button[name=go][value=check]") || form.querySelector("button[type=submit]");
    form.querySelectorAll("select[data-remap], select[name=format]").forEach(function (select) {
      select.addEventListener("change", function () { form.requestSubmit(button); });
    });
  });
})();
