// loopback.cjs: a Node preload (node -r ./loopback.cjs ...) that keeps test
// servers off the network. The npm MCP servers call listen(PORT) with no host,
// which binds every interface; this forces every TCP listen onto 127.0.0.1
// (or LOOPBACK_HOST) and reports the address actually bound on stderr as one
// line, so that a test can start a server with PORT=0 and learn its port:
//
//   loopback.cjs listening {"address":"127.0.0.1","family":"IPv4","port":41234}
//
// Unix sockets and listening on an existing handle are left alone.
"use strict";

const net = require("net");

const host = process.env.LOOPBACK_HOST || "127.0.0.1";
const listen = net.Server.prototype.listen;

function isPort(v) {
  return (
    typeof v === "number" ||
    (typeof v === "string" && v.trim() !== "" && Number.isFinite(Number(v)))
  );
}

net.Server.prototype.listen = function (...args) {
  const first = args[0];
  if (args.length === 0 || typeof first === "function") {
    // listen([callback]): a random port on every interface.
    args.unshift({ port: 0, host });
  } else if (isPort(first)) {
    // listen(port[, host][, backlog][, callback])
    if (typeof args[1] === "string") {
      args[1] = host;
    } else {
      args.splice(1, 0, host);
    }
  } else if (first !== null && typeof first === "object" && first.path === undefined &&
             (first.port !== undefined || first.host !== undefined)) {
    // listen(options[, callback]) for TCP.
    args[0] = Object.assign({}, first, { host });
    delete args[0].ipv6Only;
  }
  this.once("listening", () => {
    const addr = this.address();
    if (addr !== null && typeof addr === "object") {
      process.stderr.write("loopback.cjs listening " + JSON.stringify(addr) + "\n");
    }
  });
  return listen.apply(this, args);
};
