// Swagger UI over the gateway's own /openapi.json (gateway/docs.py serves both).
// - validatorUrl null: the default badge sends the document to an outside validator.
// - No "Try it out": requests need an RFC 9421 signature a browser form cannot make; the
//   page documents, the SDK/CLI (or any RFC 9421 library) calls.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    supportedSubmitMethods: [],
    docExpansion: "list",
    defaultModelsExpandDepth: 0,
    displayOperationId: false,
  });
});
