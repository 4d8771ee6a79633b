// Command fakefunction stands in for ./function in test/deploy until (and
// independently of) the real action: deploy.sh builds whatever package
// CERTBACKUP_FUNCTION_PKG names, and these tests only look at the archive.
package main

import "fmt"

func main() {
	fmt.Println("certbackup test stand-in action")
}
