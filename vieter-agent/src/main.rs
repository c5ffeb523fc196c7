fn main() {
    println!("vieter-agent: not implemented yet");
}
