int main() { return 0; } // done
