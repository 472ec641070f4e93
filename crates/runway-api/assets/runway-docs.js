// Runway's API docs: the vendored Swagger UI (assets/swagger-ui/README.md) on this
// server's own OpenAPI document. A file of its own rather than an inline script, so
// the page's Content-Security-Policy can forbid inline scripts altogether. Every URL
// is relative, so the page also works behind a proxy that serves Runway under a path.
"use strict";
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    // No badge fetched from swagger.io's online validator.
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
