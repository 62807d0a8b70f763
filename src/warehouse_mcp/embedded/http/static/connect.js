// Shows only the chosen option's sub-fields and an enabled group's children; without it, all are shown.
(function () {
  function sync() {
    document.querySelectorAll("[data-select]").forEach(function (group) {
      var select = document.getElementById(group.dataset.select);
      group.hidden = !!select && select.value !== group.dataset.value;
    });
    document.querySelectorAll("[data-switch-for]").forEach(function (group) {
      var box = document.getElementById(group.dataset.switchFor);
      group.hidden = !!box && !box.checked;
    });
  }
  document.addEventListener("change", sync);
  sync();
})();
