-- Test only: static s2s routes for Prosody, which has none. It answers
-- the SRV lookups of the domains in test_s2s_routes (domain -> loopback
-- port) itself: _xmpp-server with 127.0.0.1 and the port, _xmpps-server
-- with no record, so that no DNS server is asked about test domains.
-- Written for parley's federation tests (s2s/prosody_test.go); not for a
-- deployment.
module:set_global();

local adns = require "net.adns";
local routes = module:get_option("test_s2s_routes", {});

local function routed(qname, service)
	local prefix = "_" .. service .. "._tcp.";
	if qname:sub(1, #prefix) ~= prefix then return nil; end
	return routes[qname:sub(#prefix + 1)];
end

local original = adns.resolver;
function adns.resolver(...)
	local r = original(...);
	local lookup = r.lookup;
	function r.lookup(self, handler, qname, qtype, qclass)
		if qtype == "SRV" and routed(qname, "xmpps-server") then
			handler({});
			return;
		end
		local port = qtype == "SRV" and routed(qname, "xmpp-server");
		if port then
			handler({ { srv = { target = "127.0.0.1"; port = port; priority = 0; weight = 0 } } });
			return;
		end
		return lookup(self, handler, qname, qtype, qclass);
	end
	return r;
end

function module.unload()
	adns.resolver = original;
end
