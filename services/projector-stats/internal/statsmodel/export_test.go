package statsmodel

// WithScriptSalt makes the model's scripts unknown to Redis's script cache,
// so a test exercises the NOSCRIPT path of a fresh server.
func WithScriptSalt(salt string) Option { return func(m *Model) { m.salt = "-- " + salt + "\n" } }
