#define MFT_REVISION "b48a3bd-dirty"
