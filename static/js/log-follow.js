/* Follow a live log: a <pre data-follow-log> stays scrolled to its newest line as htmx appends output, until the
 * reader scrolls up to read something; scrolling back to the bottom resumes following. Vendored, no inline code
 * (the Content-Security-Policy forbids it).
 */
(function () {
  "use strict";

  var SLACK_PX = 24; // "at the bottom" allows for a partly visible last line

  function atBottom(log) {
    return log.scrollHeight - log.scrollTop - log.clientHeight <= SLACK_PX;
  }

  function follow(log) {
    if (log.dataset.followBound === "1") {
      return;
    }
    log.dataset.followBound = "1";
    log.dataset.following = "1";
    log.scrollTop = log.scrollHeight;
    log.addEventListener("scroll", function () {
      // Scrolls made by following itself end at the bottom, so they never stop it.
      log.dataset.following = atBottom(log) ? "1" : "0";
    });
  }

  function bindAll() {
    document.querySelectorAll("pre[data-follow-log]").forEach(follow);
  }

  // Before htmx appends: remember whether the reader was at the bottom; after: keep them there.
  document.addEventListener("htmx:oobBeforeSwap", function () {
    document.querySelectorAll("pre[data-follow-log]").forEach(function (log) {
      if (atBottom(log)) {
        log.dataset.following = "1";
      }
    });
  });
  document.addEventListener("htmx:oobAfterSwap", function () {
    document.querySelectorAll("pre[data-follow-log]").forEach(function (log) {
      if (log.dataset.following === "1") {
        log.scrollTop = log.scrollHeight;
      }
    });
  });
  document.addEventListener("htmx:afterSettle", bindAll);
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", bindAll);
  } else {
    bindAll();
  }
})();
