// Typesets the formulas of the pages with KaTeX, shipped with the site (docs/assets/katex/): no network.
// pymdownx.arithmatex (generic mode) leaves each formula in an element of class "arithmatex" as
// \( ... \) (inline) or \[ ... \] (display); anything else on the page is left alone.
function typesetFormulas(root) {
  for (const element of root.querySelectorAll(".arithmatex")) {
    const source = element.textContent.trim();
    const display = source.startsWith("\\[");
    const formula = source.replace(/^\\[([]/, "").replace(/\\[)\]]$/, "");
    katex.render(formula, element, {displayMode: display, throwOnError: false});
  }
}

if (typeof document$ !== "undefined") {
  document$.subscribe(({body}) => typesetFormulas(body));  // Material: every page, instant loading too
} else {
  document.addEventListener("DOMContentLoaded", () => typesetFormulas(document.body));
}
