// Package monitor implements netmap's monitor ports on the client side.
//
// A monitor receives what a port transmits (PORT/t), what it receives
// (PORT/r), or both (PORT/rt), in receive rings of its own. Monitors never
// slow the port they watch: a monitor without room loses frames, and the
// loss is counted.
//
// Frames reach a monitor from whoever runs the port's data path. For a port
// attached to a switch, that is valed's switch, for every kind of port
// (vale.Switch.AddMonitor copies the frames each round). For the parts of the
// data path that run in clients (the rings of a pipe end, and the slot
// releases and completions a zero-copy monitor feeds on), it is the client
// library: valed tells each client which monitors to feed (wire.Event), and
// the client's syncs call the hooks of its Feeds:
//
//   - TxSent and RxArrived copy frames into copy monitors (pipe ends);
//   - TxCompleted and RxReleased swap buffers with zero-copy monitors
//     (PORT/z): a TX frame reaches the monitor once the other side has taken
//     it, an RX frame once the application has released it, and the
//     monitored slot gets the monitor's free buffer, flagged NS_BUF_CHANGED,
//     as in netmap. TX frames carry NS_TXMON. A zero-copy monitor's own
//     releases feed the next monitor of a chain the same way.
//
// A zero-copy monitor shares the memory of the port it watches, so the two
// trust each other; a copy monitor shares nothing with it.
package monitor
