// Starts @vercel/cosmosdb-server over HTTPS (arguments: --host H --port P) with two fixes that
// make it answer as Cosmos DB does:
// - a point read of a document that does not exist crashes its handler into a 500, where Cosmos
//   DB answers 404. The app's repository must see the 404 that Azure sends, so the handler is
//   wrapped before the server loads its routes;
// - its command line closes the connection after every response (its `keepAlive` option is off
//   and not exposed). The Cosmos gateway keeps connections open, and the SDK reuses them: a new
//   TLS handshake per request would be most of the app's CPU in `make bench`, a cost Azure
//   does not have.
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
const { createHttpsServer } = require("@vercel/cosmosdb-server");

const argv = process.argv.slice(2);
const option = (name) => {
  const at = argv.indexOf(name);
  return at >= 0 ? argv[at + 1] : undefined;
};
const host = option("--host");
const port = parseInt(option("--port"), 10);
const server = createHttpsServer({ keepAlive: true }).listen(port, host, () => {
  console.log(`Ready to accept HTTPS connections at ${host}:${server.address().port}`);
});
