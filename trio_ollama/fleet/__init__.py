"""Scale-out: a fleet of trio-ollama servers on Ray Serve, routed by model affinity
(docs/scale-out.md). Needs the `ray` extra (`pip install 'trio-ollama[ray]'`); nothing here is
imported by the single server. The application is `trio_ollama.fleet.app` (`fleet_app`, and
`build` for a Serve config file); `trio-ollama fleet` starts one on a local cluster."""
