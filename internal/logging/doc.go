// Package logging builds the log/slog logger every Strata process uses, from
// two settings: a level ("debug", "info", "warn", "error") and a format
// ("text" or "json"). Loggers are passed down explicitly; nothing here sets
// slog's default logger behind the caller's back.
package logging
