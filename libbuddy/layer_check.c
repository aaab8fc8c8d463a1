/* layer_check.c: the main of the layer-check programs (meson.build), each
 * linked with every object of one layer and those below it: it links only if
 * nothing there calls a layer above. */
int main(void) {
  return 0;
}
