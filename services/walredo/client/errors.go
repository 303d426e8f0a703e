package client

import "errors"

// ErrProtocol: the server answered something the contract does not allow
// (a page that is not 8 KB). Request failures use the redo sentinels.
var ErrProtocol = errors.New("client: walredo server violated the protocol")
