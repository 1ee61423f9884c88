package admin

// RouteInfo is a route of the table, for the OpenAPI test.
type RouteInfo struct {
	Method, Path string
	Write        bool
}

// Routes returns the route table.
func Routes() []RouteInfo {
	var out []RouteInfo
	for _, r := range routes(&api{}) {
		out = append(out, RouteInfo{r.method, r.path, r.write})
	}
	return out
}
