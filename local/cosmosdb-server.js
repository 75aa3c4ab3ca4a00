// Starts @vercel/cosmosdb-server (same arguments as its CLI) with one fix: a point read of a
// document that does not exist crashes its handler into a 500, where Cosmos DB answers 404.
// The app's repository must see the 404 that Azure sends, so the handler is wrapped before the
// server loads its routes.
const handler = require("@vercel/cosmosdb-server/lib/handler/read-document");
const original = handler.default;
handler.default = (account, req, res, params) => {
  try {
    return original(account, req, res, params);
  } catch (err) {
    if (err instanceof TypeError) {
      res.statusCode = 404;
      return { code: "NotFound", message: "Entity with the specified id does not exist in the system." };
    }
    throw err;
  }
};
require("@vercel/cosmosdb-server/lib/cli");
