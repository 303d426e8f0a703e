package lsn

import "errors"

// ErrSyntax is returned (wrapped) when text is not a valid LSN.
var ErrSyntax = errors.New("lsn: invalid syntax")

// ErrWALFileName is returned (wrapped) when text is not a valid WAL segment file name.
var ErrWALFileName = errors.New("lsn: invalid WAL file name")
