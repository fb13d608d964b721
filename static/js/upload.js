// The data step's upload with a progress bar: the form is sent with XMLHttpRequest (whose upload events
// report progress); the answer replaces the page as a normal submit would. Without JavaScript the form
// still posts normally.
(function () {
  const form = document.querySelector("form[data-upload]");
  if (!form) return;
  const bar = document.getElementById("upload-progress");
  form.addEventListener("submit", function (event) {
    const file = form.querySelector("input[type=file]");
    if (!file || !file.files.length) return;  // no upload: an ordinary submit
    event.preventDefault();
    const data = new FormData(form);
    if (event.submitter && event.submitter.name) data.append(event.submitter.name, event.submitter.value);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.action || window.location.href);
    bar.hidden = false;
    xhr.upload.addEventListener("progress", function (e) {
      if (e.lengthComputable) { bar.value = e.loaded / e.total; bar.textContent = Math.round(100 * e.loaded / e.total) + "%"; }
    });
    xhr.addEventListener("load", function () {
      if (xhr.status < 300 && xhr.responseURL && xhr.responseURL !== window.location.href) {
        window.location.href = xhr.responseURL;  // the step after a successful upload
        return;
      }
      document.open(); document.write(xhr.responseText); document.close();
      history.replaceState(null, "", xhr.responseURL || window.location.href);
    });
    xhr.addEventListener("error", function () { bar.hidden = true; alert("The upload failed: the connection was lost. Try again."); });
    xhr.send(data);
  });
})();
