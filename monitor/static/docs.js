// Starts Swagger UI on /docs. A file rather than an inline <script>, so the page runs under the
// API's Content-Security-Policy (script-src 'self') like every other page (see monitor/api.py).
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
});
