/* Paved page behaviours that used to be inline handlers (the Content-Security-Policy forbids those).
 *
 * data-submit-on-change on a select: submit its form when the choice changes (the team switcher).
 * data-confirm="question" on a form: ask before submitting; cancelling keeps the page as it is.
 * Delegated from the document, so content swapped in by htmx behaves the same without re-binding.
 */
(function () {
  "use strict";

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target instanceof HTMLSelectElement && target.hasAttribute("data-submit-on-change") && target.form) {
      target.form.requestSubmit();
    }
  });

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-confirm")) {
      return;
    }
    if (!window.confirm(form.getAttribute("data-confirm"))) {
      event.preventDefault();
    }
  });
})();
