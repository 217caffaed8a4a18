/* Paved forms: show or hide dependent launch parameters.
 *
 * Every element with data-show-when='{"field": "gpu", "name": "p-gpu", "equals": "a100"}' is shown only while
 * its rule holds for the current values of the same form. Rules: equals, in, truthy (with numeric: "0" is
 * falsy), not, all, any.
 * A hidden field's inputs are disabled so the browser does not submit them (the server drops them too).
 * An input with data-paved-default="workspace_name" follows the form's name field as it is typed, until the user
 * edits it (the server fills it from the name too when it is left empty), so nobody types the same name twice.
 * Vanilla JS, no dependencies: the portal must work air-gapped.
 */
(function () {
  "use strict";

  var HIDDEN_MARK = "pavedHidden";

  function scopeOf(element) {
    return element.closest("form") || document;
  }

  function inputsNamed(scope, name) {
    var found = [];
    var all = scope.querySelectorAll("input, select, textarea");
    for (var i = 0; i < all.length; i++) {
      if (all[i].name === name) {
        found.push(all[i]);
      }
    }
    return found;
  }

  /* The controlling field's value: true/false for a single checkbox, a list for checkbox groups, a string
   * otherwise, null when it is absent, disabled or hidden (a hidden controller counts as unset). */
  function currentValue(scope, name) {
    var inputs = inputsNamed(scope, name).filter(function (input) { return !input.disabled; });
    if (!inputs.length) {
      return null;
    }
    var first = inputs[0];
    if (first.type === "checkbox" && inputs.length === 1 && !first.hasAttribute("value")) {
      return first.checked;
    }
    if (first.type === "checkbox") {
      return inputs.filter(function (input) { return input.checked; }).map(function (input) { return input.value; });
    }
    if (first.type === "radio") {
      var checked = inputs.filter(function (input) { return input.checked; });
      return checked.length ? checked[0].value : null;
    }
    if (first.tagName === "SELECT" && first.multiple) {
      return Array.prototype.filter.call(first.options, function (option) { return option.selected; })
        .map(function (option) { return option.value; });
    }
    return first.value;
  }

  function same(value, expected) {
    if (typeof value === "boolean") {
      return value === (expected === true || expected === "true");
    }
    if (Array.isArray(value)) {
      return value.indexOf(String(expected)) !== -1;
    }
    return value !== null && value === (typeof expected === "string" ? expected : JSON.stringify(expected));
  }

  function truthy(value) {
    if (Array.isArray(value)) {
      return value.length > 0;
    }
    return value !== null && value !== false && value !== "" && value !== "false";
  }

  function holds(rule, scope) {
    if (rule.all) {
      return rule.all.every(function (part) { return holds(part, scope); });
    }
    if (rule.any) {
      return rule.any.some(function (part) { return holds(part, scope); });
    }
    if (rule.not) {
      return !holds(rule.not, scope);
    }
    var value = currentValue(scope, rule.name || rule.field);
    if (Object.prototype.hasOwnProperty.call(rule, "equals")) {
      return same(value, rule.equals);
    }
    if (rule.in) {
      return rule.in.some(function (expected) { return same(value, expected); });
    }
    if (rule.truthy) {
      return truthy(value) && !(rule.numeric && Number(value) === 0);
    }
    return true;
  }

  function setVisible(element, visible) {
    element.hidden = !visible;
    element.style.display = visible ? "" : "none";
    var inputs = element.querySelectorAll("input, select, textarea");
    for (var i = 0; i < inputs.length; i++) {
      var input = inputs[i];
      if (!visible && !input.disabled) {
        input.disabled = true;
        input.dataset[HIDDEN_MARK] = "1";
      } else if (visible && input.dataset[HIDDEN_MARK]) {
        input.disabled = false;
        delete input.dataset[HIDDEN_MARK];
      }
    }
  }

  /* Repeat until nothing changes, so a field controlled by another dependent field settles too. */
  function refresh(root) {
    var elements = (root || document).querySelectorAll("[data-show-when]");
    for (var pass = 0; pass < 5; pass++) {
      var changed = false;
      for (var i = 0; i < elements.length; i++) {
        var element = elements[i];
        var rule;
        try {
          rule = JSON.parse(element.getAttribute("data-show-when"));
        } catch (error) {
          continue;
        }
        var visible = holds(rule, scopeOf(element));
        if (visible === element.hidden) {
          setVisible(element, visible);
          changed = true;
        }
      }
      if (!changed) {
        return;
      }
    }
  }

  /* After inline validation fills a field's error slot, mark the field as erroneous or clear it. */
  function markErrors(target) {
    if (!target || !target.classList || !target.classList.contains("field-error")) {
      return;
    }
    var wrapper = target.closest(".field");
    var failing = target.textContent.trim() !== "";
    if (wrapper) {
      wrapper.classList.toggle("has-error", failing);
      var inputs = wrapper.querySelectorAll("input, select, textarea");
      for (var i = 0; i < inputs.length; i++) {
        if (failing) {
          inputs[i].setAttribute("aria-invalid", "true");
        } else {
          inputs[i].removeAttribute("aria-invalid");
        }
      }
    }
  }

  var EDITED_MARK = "pavedEdited";

  function derivedInputs(form) {
    return form ? form.querySelectorAll("[data-paved-default=workspace_name]") : [];
  }

  /* Copy the name into each derived input the user has not edited; `announce` (the name field's own change,
   * when the user leaves it) fires the derived input's change too, so htmx validates it once, not per key. */
  function followName(nameInput, announce) {
    var derived = derivedInputs(nameInput.form);
    for (var i = 0; i < derived.length; i++) {
      var input = derived[i];
      if (input.dataset[EDITED_MARK]) {
        continue;
      }
      input.value = nameInput.value;
      if (announce) {
        input.dispatchEvent(new Event("change", { bubbles: true }));
      }
    }
  }

  function startDerivedDefaults() {
    var derived = document.querySelectorAll("[data-paved-default=workspace_name]");
    for (var i = 0; i < derived.length; i++) {
      var input = derived[i];
      var nameInput = input.form && input.form.elements.namedItem("name");
      if (input.value && (!nameInput || input.value !== nameInput.value)) {
        input.dataset[EDITED_MARK] = "1"; /* a value the user chose (a re-rendered form keeps it) */
      }
      input.addEventListener("input", function (event) {
        var own = event.target;
        var name = own.form && own.form.elements.namedItem("name");
        if (!name || own.value !== name.value) {
          own.dataset[EDITED_MARK] = "1";
        } else {
          delete own.dataset[EDITED_MARK];
        }
      });
    }
    document.addEventListener("input", function (event) {
      if (event.target && event.target.name === "name" && event.target.form) {
        followName(event.target, false);
      }
    });
    document.addEventListener("change", function (event) {
      if (event.target && event.target.name === "name" && event.target.form) {
        followName(event.target, true);
      }
    });
    var forms = {};
    for (var j = 0; j < derived.length; j++) {
      var field = derived[j].form && derived[j].form.elements.namedItem("name");
      if (field && field.value && !forms[field.id]) {
        forms[field.id] = true;
        followName(field, false);
      }
    }
  }

  function start() {
    startDerivedDefaults();
    refresh(document);
    document.addEventListener("change", function () { refresh(document); });
    document.addEventListener("input", function () { refresh(document); });
    document.body.addEventListener("htmx:afterSwap", function (event) {
      markErrors(event.detail && event.detail.target);
      refresh(document);
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
