enum Ops {}
